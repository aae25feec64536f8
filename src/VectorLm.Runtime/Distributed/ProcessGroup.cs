using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Distributed;

/// <summary>
/// A set of ranks that run collectives together (torch.distributed's process group). Every collective exchanges
/// fingerprints where the backend can (see <see cref="Fingerprint"/>), so mismatched calls fail on every rank.
/// </summary>
internal abstract class ProcessGroup : IDisposable
{
    protected ProcessGroup(int rank, int worldSize, TimeSpan timeout)
    {
        Rank = rank;
        WorldSize = worldSize;
        Timeout = timeout;
    }

    public int Rank { get; }
    public int WorldSize { get; }

    /// <summary>How long a collective waits for the other ranks before failing with the names of the missing ones.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Tcp or Nccl.</summary>
    public abstract DistributedBackend Backend { get; }

    /// <summary>Number of collectives run so far; the next one's sequence number.</summary>
    public long Sequence { get; protected set; }

    public abstract void Barrier(CallSite site);

    /// <summary>Combines <paramref name="tensor"/> over ranks in place.</summary>
    public abstract void AllReduce(Tensor tensor, ReduceOp op, CallSite site);

    /// <summary>Overwrites <paramref name="tensor"/> with rank <paramref name="root"/>'s, in place.</summary>
    public abstract void Broadcast(Tensor tensor, int root, CallSite site);

    /// <summary>Every rank's tensor stacked along a new leading dimension of size <see cref="WorldSize"/>.</summary>
    public abstract Tensor AllGather(Tensor tensor, CallSite site);

    /// <summary>Rank <paramref name="root"/>'s bytes on every rank.</summary>
    public abstract byte[] BroadcastBytes(byte[] value, int root, CallSite site);

    /// <summary>Every rank's bytes, indexed by rank.</summary>
    public abstract byte[][] AllGatherBytes(byte[] value, CallSite site);

    public abstract void Dispose();

    /// <summary>
    /// Makes collectives stop when <paramref name="token"/> is cancelled: a waiting one and every later one throw
    /// <see cref="OperationCanceledException"/>, and the group becomes unusable.
    /// </summary>
    public abstract void ObserveCancellation(CancellationToken token);

    protected Fingerprint Next(CollectiveKind kind, CallSite site, Tensor? tensor = null, ReduceOp? op = null, int root = -1) =>
        new(Sequence++, kind, op, root,
            tensor is null ? "" : TensorMemory.DTypeName(tensor.dtype),
            tensor is null ? [] : tensor.shape, site);

    protected void CheckRoot(int root, string what)
    {
        if ((uint)root >= (uint)WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"{what}: root must be a rank in [0, {WorldSize})");
    }
}
