namespace VectorLm.Training;

/// <summary>Named metric values by step, kept in memory for <see cref="MetricsPlot"/>.</summary>
public sealed class MetricsHistory
{
    readonly Dictionary<string, List<(double Step, double Value)>> _series = new(StringComparer.Ordinal);

    /// <summary>Records <paramref name="values"/> at <paramref name="step"/>; non-finite values are skipped (a gap, not a zero).</summary>
    public void Add(int step, IEnumerable<KeyValuePair<string, double>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var (name, value) in values)
        {
            if (name == "step" || !double.IsFinite(value)) continue;
            if (!_series.TryGetValue(name, out var list)) _series[name] = list = new();
            list.Add((step, value));
        }
    }

    /// <summary>The recorded points of <paramref name="name"/>, in the order added (empty when none).</summary>
    public IReadOnlyList<(double Step, double Value)> Series(string name) =>
        _series.TryGetValue(name, out var list) ? list : Array.Empty<(double, double)>();
}
