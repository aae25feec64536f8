using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm;

/// <summary>
/// What a training loop sees of the job: its rank, the world size, its device, and the collectives.
/// Names and semantics follow torch.distributed. Every member marked <see cref="CollectiveAttribute"/> must be
/// called by all ranks in the same order; the caller-info parameters feed the desync detector and are not for users.
/// </summary>
/// <remarks>
/// SKELETON (foundation): a single-process implementation. The distributed runtime issue replaces the body with
/// process groups; the public surface below is fixed because the generator and analyzer depend on it.
/// </remarks>
public sealed class TrainerContext : IDisposable
{
    readonly List<Action> _weightListeners = new();

    TrainerContext(int rank, int localRank, int worldSize, Device device)
    {
        Rank = rank;
        LocalRank = localRank;
        WorldSize = worldSize;
        Device = device;
    }

    /// <summary>A context for one process on <paramref name="device"/> (CPU when null): world size 1.</summary>
    public static TrainerContext SingleProcess(Device? device = null) => new(0, 0, 1, device ?? CPU);

    /// <summary>This process's rank in [0, <see cref="WorldSize"/>).</summary>
    [RankDependent] public int Rank { get; }

    /// <summary>This process's rank on its node; the GPU index it uses.</summary>
    [RankDependent] public int LocalRank { get; }

    /// <summary>Number of ranks in the job.</summary>
    [RankUniform] public int WorldSize { get; }

    /// <summary>True on rank 0.</summary>
    [RankDependent] public bool IsMainRank => Rank == 0;

    /// <summary>The device this rank trains on (CUDA:LocalRank, or CPU).</summary>
    public Device Device { get; }

    /// <summary>Blocks until every rank has called it.</summary>
    [Collective]
    public void Barrier([CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) { }

    /// <summary>Combines <paramref name="tensor"/> across ranks in place and returns it.</summary>
    [Collective, RankUniform]
    public Tensor AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => tensor;

    /// <summary>Returns rank <paramref name="root"/>'s <paramref name="value"/> on every rank (serialised as JSON).</summary>
    [Collective, RankUniform]
    public T Broadcast<T>(T value, int root = 0,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => value;

    /// <summary>Returns every rank's <paramref name="value"/>, indexed by rank, on every rank.</summary>
    [Collective, RankUniform]
    public IReadOnlyList<T> AllGather<T>(T value,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => new[] { value };

    /// <summary>Copies rank <paramref name="root"/>'s tensor into <paramref name="tensor"/> on every rank, in place.</summary>
    [Collective, RankUniform]
    public Tensor BroadcastTensor(Tensor tensor, int root = 0,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => tensor;

    /// <summary>Returns every rank's tensor (same shape on all ranks), concatenated along a new leading dimension.</summary>
    [Collective, RankUniform]
    public Tensor AllGatherTensor(Tensor tensor,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => tensor.unsqueeze(0);

    /// <summary>
    /// Registers a callback run after every optimizer step the runtime performs for this context, so samplers
    /// created from it know their weights are stale. Returns a handle that unregisters it.
    /// </summary>
    public IDisposable OnWeightsChanged(Action listener)
    {
        lock (_weightListeners) _weightListeners.Add(listener);
        return new Unsubscriber(() => { lock (_weightListeners) _weightListeners.Remove(listener); });
    }

    /// <summary>Tells every registered listener that the trained weights changed (called after an optimizer step).</summary>
    public void NotifyWeightsChanged()
    {
        Action[] listeners;
        lock (_weightListeners) listeners = _weightListeners.ToArray();
        foreach (var l in listeners) l();
    }

    /// <inheritdoc />
    public void Dispose() { }

    sealed class Unsubscriber(Action action) : IDisposable
    {
        Action? _action = action;
        public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
    }
}
