using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.Collectives;

/// <summary>A collective reached at one operation: a direct call, or a call to code that performs collectives.</summary>
/// <param name="Operation">The call.</param>
/// <param name="Sequence">The collectives it performs, one token per line, or a single opaque token when it varies.</param>
/// <param name="Display">What the diagnostic calls it, e.g. <c>Barrier</c> or <c>Sync (calls Barrier)</c>.</param>
/// <param name="May">True when only some of the call's possible targets perform collectives (dispatch, delegates).</param>
internal sealed record CollectiveSite(IOperation Operation, string Sequence, string Display, bool May = false);
