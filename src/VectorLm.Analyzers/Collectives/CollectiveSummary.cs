namespace VectorLm.Analyzers.Collectives;

/// <summary>What calling a method does, collective-wise.</summary>
/// <param name="Sequence">Its collectives in order, one per line ("" for none); null when paths disagree.</param>
/// <param name="Display">The first collective it performs, for messages.</param>
/// <param name="May">True when it performs collectives only through some of the targets of a call inside it.</param>
internal sealed class CollectiveSummary
{
    public static readonly CollectiveSummary None = new(false, "", "");

    public CollectiveSummary(bool hasCollectives, string? sequence, string display, bool may = false)
    {
        HasCollectives = hasCollectives;
        Sequence = sequence;
        Display = display;
        May = may;
    }

    public bool May { get; }

    public bool HasCollectives { get; }

    public string? Sequence { get; }

    public string Display { get; }
}
