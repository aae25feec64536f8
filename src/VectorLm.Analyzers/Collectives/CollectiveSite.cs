using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.Collectives;

/// <summary>A collective reached at one operation: a direct call, or a call to code that performs collectives.</summary>
/// <param name="Operation">The call.</param>
/// <param name="Sequence">The collectives it performs, one token per line, or a single opaque token when it varies.</param>
/// <param name="Display">What the diagnostic calls it, e.g. <c>Barrier</c> or <c>Sync (calls Barrier)</c>.</param>
/// <param name="May">True when only some of the call's possible targets perform collectives (dispatch, delegates).</param>
internal sealed class CollectiveSite
{
    public CollectiveSite(IOperation operation, string sequence, string display, bool may = false)
    {
        Operation = operation;
        Sequence = sequence;
        Display = display;
        May = may;
    }

    public IOperation Operation { get; }

    public string Sequence { get; }

    public string Display { get; }

    public bool May { get; }
}
