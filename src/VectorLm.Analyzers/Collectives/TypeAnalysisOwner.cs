using System.Threading;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// The thread computing one type's analysis, so that under concurrent analysis another thread that needs the same type
/// waits for it instead of computing it a second time (see <see cref="CollectiveModel.GetTypeAnalysis"/>).
/// </summary>
internal sealed class TypeAnalysisOwner
{
    /// <summary>The managed id of the computing thread.</summary>
    public int ThreadId { get; } = System.Threading.Thread.CurrentThread.ManagedThreadId;

    /// <summary>Set when the computation ended, successfully or not.</summary>
    public ManualResetEventSlim Done { get; } = new(false);

    /// <summary>The finished analysis, or null when the computation failed (a waiter then computes its own).</summary>
    public TypeAnalysis? Result { get; set; }
}
