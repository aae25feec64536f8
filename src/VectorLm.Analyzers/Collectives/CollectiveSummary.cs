namespace VectorLm.Analyzers.Collectives;

/// <summary>What calling a method does, collective-wise.</summary>
/// <param name="HasCollectives">Whether it performs any collective on some path.</param>
/// <param name="Sequence">Its collectives in order, one per line ("" for none); null when paths disagree.</param>
/// <param name="Display">The first collective it performs, for messages.</param>
/// <param name="May">True when it performs collectives only through some of the targets of a call inside it.</param>
internal sealed record CollectiveSummary(bool HasCollectives, string? Sequence, string Display, bool May = false)
{
    public static readonly CollectiveSummary None = new(false, "", "");
}
