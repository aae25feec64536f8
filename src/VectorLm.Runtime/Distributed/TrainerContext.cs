using System.Runtime.CompilerServices;
using System.Text.Json;
using TorchSharp;
using VectorLm.Distributed;
using VectorLm.Distributed.Nccl;
using VectorLm.Training;
using static TorchSharp.torch;
using CallSite = VectorLm.Distributed.CallSite;

namespace VectorLm;

/// <summary>
/// What a training loop sees of the job: its rank, the world size, its device, and the collectives.
/// Names and semantics follow torch.distributed. Every member marked <see cref="CollectiveAttribute"/> must be
/// called by all ranks in the same order; the caller-info parameters feed the desync detector and are not for users.
/// </summary>
/// <remarks>
/// A context is backed by a process group: <c>tcp</c> (CPU tensors, every collective checks that all ranks called
/// the same thing) or <c>nccl</c> (CUDA tensors; CPU tensors and the object collectives go over a tcp group beside
/// it). Collectives on one context are not thread-safe: call them from one thread of control at a time.
/// </remarks>
public sealed class TrainerContext : IDisposable
{
    readonly List<Action> _weightListeners = new();
    readonly ProcessGroup? _group;
    readonly TcpStore? _store;

    TrainerContext(int rank, int localRank, int worldSize, Device device, ProcessGroup? group, TcpStore? store)
    {
        Rank = rank;
        LocalRank = localRank;
        WorldSize = worldSize;
        Device = device;
        Precision = Precision.DefaultFor(device);
        _group = group;
        _store = store;
    }

    internal TrainerContext(ProcessGroup group, int localRank, Device device, TcpStore? store = null)
        : this(group.Rank, localRank, group.WorldSize, device, group, store) { }

    /// <summary>A context for one process on <paramref name="device"/> (CPU when null): world size 1.</summary>
    public static TrainerContext SingleProcess(Device? device = null) => new(0, 0, 1, device ?? CPU, null, null);

    /// <summary>
    /// Joins the job this process was launched into, as described by the environment (torchrun's <c>RANK</c>,
    /// <c>LOCAL_RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_WORLD_SIZE</c>, <c>MASTER_ADDR</c>, <c>MASTER_PORT</c>, or Slurm's
    /// <c>SLURM_PROCID</c>, <c>SLURM_NTASKS</c>, <c>SLURM_LOCALID</c>): rank 0 hosts the rendezvous store, every rank
    /// connects and the process group forms. The device is CUDA:LOCAL_RANK when CUDA is available, else the CPU.
    /// Without a rank environment this is <see cref="SingleProcess"/>.
    /// </summary>
    /// <exception cref="DistributedException">Bad environment, port in use, unreachable master, ranks that never join.</exception>
    public static TrainerContext FromEnvironment(DistributedOptions? options = null)
    {
        options ??= new DistributedOptions();
        var env = DistributedEnvironment.Read();
        bool cuda = torch.cuda.is_available();
        var device = cuda ? new Device(DeviceType.CUDA, env.CudaDevice(torch.cuda.device_count())) : CPU;
        var backend = options.Backend switch
        {
            DistributedBackend.Auto => cuda ? DistributedBackend.Nccl : DistributedBackend.Tcp,
            DistributedBackend.Tcp or DistributedBackend.Nccl => options.Backend,
            _ => throw new DistributedException($"backend {options.Backend} cannot be asked for; use Auto, Tcp or Nccl"),
        };
        if (env.WorldSize == 1 && env.Source == "single") return SingleProcess(device);
        if (backend == DistributedBackend.Nccl && !cuda)
            throw new DistributedException("the nccl backend needs CUDA, and torch.cuda.is_available() is false here; use --backend tcp");
        return Connect(env, device, backend, options);
    }

    /// <summary>Joins the job described by <paramref name="env"/> on <paramref name="device"/> with <paramref name="backend"/>.</summary>
    internal static TrainerContext Connect(DistributedEnvironment env, Device device, DistributedBackend backend, DistributedOptions options)
    {
        var joinTimeout = options.ResolveRendezvousTimeout();
        var collectiveTimeout = options.ResolveCollectiveTimeout();
        var security = options.ResolveSecurity();
        if (env.Rank == 0 && env.WorldSize > env.LocalWorldSize) SocketIO.RequireReachableFromOtherNodes(env.MasterAddr, security.BindAllInterfaces);
        var store = TcpStore.Connect(env.MasterAddr, env.MasterPort, isServer: env.Rank == 0, joinTimeout, $"rank {env.Rank} of {env.WorldSize}", security);
        try
        {
            ProcessGroup group = backend == DistributedBackend.Nccl
                ? NcclProcessGroup.Create(store, env.Rank, env.WorldSize, collectiveTimeout, joinTimeout, device.index < 0 ? 0 : (int)device.index, options.ResolveDesyncDebug())
                : TcpProcessGroup.Create(store, env.Rank, env.WorldSize, collectiveTimeout, joinTimeout);
            group.ObserveCancellation(options.Cancellation);
            return new TrainerContext(group, env.LocalRank, device, store) { LocalWorldSize = env.LocalWorldSize };
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    /// <summary>This process's rank in [0, <see cref="WorldSize"/>).</summary>
    [RankDependent] public int Rank { get; }

    /// <summary>This process's rank on its node; the GPU index it uses.</summary>
    [RankDependent] public int LocalRank { get; }

    /// <summary>Number of ranks on this node (they share its cores); 1 when not known.</summary>
    internal int LocalWorldSize { get; init; } = 1;

    /// <summary>Number of ranks in the job.</summary>
    [RankUniform] public int WorldSize { get; }

    /// <summary>True on rank 0.</summary>
    [RankDependent] public bool IsMainRank => Rank == 0;

    /// <summary>The device this rank trains on (CUDA:LocalRank, or CPU).</summary>
    public Device Device { get; }

    /// <summary>
    /// How this trainer stores weights and computes (<c>--precision</c>; default bf16-mixed on CUDA, 32-true on the
    /// CPU). <see cref="Models.LlamaModel"/> reads it through <see cref="Training.Precision.Current"/>.
    /// </summary>
    [RankUniform] public Precision Precision { get; internal set; }

    /// <summary>The process group behind the collectives; null for a single process.</summary>
    internal ProcessGroup? Group => _group;

    /// <summary>The backend of the process group: <see cref="DistributedBackend.Tcp"/>, <see cref="DistributedBackend.Nccl"/>, or <see cref="DistributedBackend.None"/> for a single process.</summary>
    [RankUniform] public DistributedBackend Backend => _group?.Backend ?? DistributedBackend.None;

    /// <summary>Blocks until every rank has called it.</summary>
    [Collective]
    public void Barrier([CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
        => _group?.Barrier(new CallSite(member, file, line));

    /// <summary>
    /// Combines <paramref name="tensor"/> across ranks in place and returns it. Every rank must pass a tensor of the
    /// same shape and dtype; <see cref="ReduceOp.Avg"/> needs a floating-point tensor. The result is bit-identical on all ranks.
    /// </summary>
    [Collective, RankUniform]
    public Tensor AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (_group is null)
        {
            if (op == ReduceOp.Avg && !torch.is_floating_point(tensor))
                throw new ArgumentException($"ReduceOp.Avg needs a floating-point tensor, not {tensor.dtype}", nameof(op));
            return tensor;
        }
        _group.AllReduce(tensor, op, new CallSite(member, file, line));
        return tensor;
    }

    /// <summary>Copies rank <paramref name="src"/>'s tensor into <paramref name="tensor"/> on every rank, in place.</summary>
    [Collective, RankUniform]
    public Tensor Broadcast(Tensor tensor, int src = 0,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if ((uint)src >= (uint)WorldSize) throw new ArgumentOutOfRangeException(nameof(src), src, $"src must be a rank in [0, {WorldSize})");
        _group?.Broadcast(tensor, src, new CallSite(member, file, line));
        return tensor;
    }

    /// <summary>
    /// Returns every rank's tensor (same shape on all ranks) stacked along a new leading dimension, indexed by rank: shape
    /// <c>[WorldSize, ..tensor.shape]</c>. (torch.distributed's <c>all_gather_into_tensor</c> concatenates along dim 0 instead;
    /// <c>result.flatten(0, 1)</c> gives that.)
    /// </summary>
    [Collective, RankUniform]
    public Tensor AllGather(Tensor tensor,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (_group is not null) return _group.AllGather(tensor, new CallSite(member, file, line));
        using var one = tensor.unsqueeze(0);
        return one.clone();
    }

    /// <summary>
    /// Returns rank <paramref name="src"/>'s <paramref name="value"/> on every rank (serialised as JSON with
    /// System.Text.Json, so every rank, <paramref name="src"/> included, gets an equal deserialised copy), as
    /// torch.distributed's <c>broadcast_object_list</c>.
    /// </summary>
    [Collective, RankUniform]
    public T BroadcastObject<T>(T value, int src = 0,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if ((uint)src >= (uint)WorldSize) throw new ArgumentOutOfRangeException(nameof(src), src, $"src must be a rank in [0, {WorldSize})");
        byte[] mine = Rank == src ? JsonSerializer.SerializeToUtf8Bytes(value) : [];
        var bytes = _group is null ? mine : _group.BroadcastBytes(mine, src, new CallSite(member, file, line));
        return JsonSerializer.Deserialize<T>(bytes)!;
    }

    /// <summary>Returns every rank's <paramref name="value"/>, indexed by rank, on every rank (serialised as JSON), as torch.distributed's <c>all_gather_object</c>.</summary>
    [Collective, RankUniform]
    public IReadOnlyList<T> AllGatherObject<T>(T value,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        var mine = JsonSerializer.SerializeToUtf8Bytes(value);
        var all = _group is null ? [mine] : _group.AllGatherBytes(mine, new CallSite(member, file, line));
        return all.Select(b => JsonSerializer.Deserialize<T>(b)!).ToArray();
    }

    /// <summary>
    /// Overwrites <paramref name="parameters"/> with rank 0's values on every rank, as PyTorch's DDP does when it wraps
    /// a model. The SDK's optimizer builders (<see cref="Training.Optimizers.AdamW"/>, <see cref="Training.Trainer"/>)
    /// do this for you; call it after building an optimizer another way, before the first forward. Samplers made from
    /// this context are marked stale.
    /// </summary>
    [Collective]
    public void BroadcastParameters(IEnumerable<TorchSharp.Modules.Parameter> parameters,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (WorldSize == 1) return;
        ParameterBroadcast.FromRank0(this, parameters, new CallSite(member, file, line));
        NotifyWeightsChanged();
    }

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

    /// <summary>Leaves the process group and closes the rendezvous store (rank 0 stops serving it).</summary>
    public void Dispose()
    {
        _group?.Dispose();
        _store?.Dispose();
    }

    sealed class Unsubscriber(Action action) : IDisposable
    {
        Action? _action = action;
        public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
    }
}
