using System.Threading;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Where the deadlock analysis was not sure, per compilation: sites it could only call "may", and the places it gave up
/// (work limits, unknown call targets). It gives up silently (no diagnostic), so these counts are how a test corpus
/// measures it; docs/rules/VLM1001.md lists the blind spots behind them.
/// </summary>
internal sealed class AnalysisStats
{
    /// <summary>Collective sites found (each call that performs collectives, in each body).</summary>
    public int Sites;

    /// <summary>Interface and virtual calls looked at (dispatch).</summary>
    public int DispatchedCalls;

    /// <summary>Delegate calls looked at.</summary>
    public int DelegateCalls;

    /// <summary>Collective sites whose targets only sometimes perform collectives (dispatch, delegates).</summary>
    public int MaySites;

    /// <summary>Interface or virtual calls with more implementations than <see cref="AnalysisLimits.DispatchTargets"/>: treated as no collective.</summary>
    public int DispatchGiveUps;

    /// <summary>Delegate calls whose targets are unknown (parameters, library delegates): treated as no collective.</summary>
    public int UnknownDelegateTargets;

    /// <summary>Sequence comparisons that hit a work limit (rounds, length, nesting) and fell back to "may".</summary>
    public int SequenceLimits;

    /// <summary>Taint passes that stopped at their round limit before a fixed point.</summary>
    public int TaintRoundLimits;

    public void Add(ref int counter) => Interlocked.Increment(ref counter);
}
