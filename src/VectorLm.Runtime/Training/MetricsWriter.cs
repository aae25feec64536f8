using System.Text.Json;

namespace VectorLm.Training;

/// <summary>What one training step did.</summary>
/// <param name="Step">One-based number of the step just taken.</param>
/// <param name="Loss">Mean loss of the batch.</param>
/// <param name="LearningRate">Learning rate used.</param>
/// <param name="GradNorm">Total gradient norm before clipping.</param>
/// <param name="Tokens">Tokens in the batch.</param>
/// <param name="Seconds">Wall time of the step.</param>
public readonly record struct StepMetrics(int Step, double Loss, double LearningRate, double GradNorm, long Tokens, double Seconds)
{
    /// <summary>Throughput of the step.</summary>
    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;
}

/// <summary>Appends one JSON object per step to a JSONL file: <c>step</c>, <c>loss</c>, <c>lr</c>, <c>tokens_per_s</c>, <c>grad_norm</c>, <c>seconds</c>.</summary>
public sealed class MetricsWriter : IDisposable
{
    readonly StreamWriter _writer;

    /// <summary>Opens <paramref name="path"/> for appending (a resumed run continues the same file).</summary>
    public MetricsWriter(string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = true };
    }

    /// <summary>Writes one line.</summary>
    public void Write(StepMetrics m)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("step", m.Step);
            WriteFinite(json, "loss", m.Loss); // a diverged step is written as null, not lost as an exception
            json.WriteNumber("lr", m.LearningRate);
            json.WriteNumber("tokens_per_s", Math.Round(m.TokensPerSecond, 1));
            WriteFinite(json, "grad_norm", m.GradNorm);
            json.WriteNumber("seconds", Math.Round(m.Seconds, 6));
            json.WriteEndObject();
        }
        _writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    /// <summary>Writes one line of named values (non-finite ones as null), e.g. <c>GrpoMetrics.ToPairs(step)</c>.</summary>
    public void Write(IEnumerable<KeyValuePair<string, double>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            foreach (var (name, value) in values) WriteFinite(json, name, value);
            json.WriteEndObject();
        }
        _writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }

    static void WriteFinite(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value)) json.WriteNumber(name, value);
        else json.WriteNull(name);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _writer.Dispose();
}
