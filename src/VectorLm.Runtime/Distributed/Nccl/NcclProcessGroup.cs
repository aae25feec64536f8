using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Nccl;

/// <summary>An owned <c>ncclComm_t</c>: destroyed normally, aborted after a failure (destroy could hang then).</summary>
internal sealed class NcclCommunicator : IDisposable, NcclWatchdog.IDevice
{
    readonly nint _context;
    nint _comm;

    public NcclCommunicator(nint comm, nint context)
    {
        _comm = comm;
        _context = context;
    }

    public nint Handle => _comm != 0 ? _comm : throw new ObjectDisposedException(nameof(NcclCommunicator), "the NCCL communicator was aborted or disposed");

    public bool Failed { get; set; }

    public void AttachThread() => CudaDriver.MakeCurrent(_context);

    public nint RecordCompletion() => CudaDriver.RecordEvent(0);

    public bool IsComplete(nint marker) => CudaDriver.EventDone(marker);

    public void Release(nint marker) => CudaDriver.DestroyEvent(marker);

    public NcclResult AsyncError()
    {
        var comm = _comm;
        if (comm == 0) return NcclResult.Success;
        var r = NcclNative.ncclCommGetAsyncError(comm, out var async);
        return r != NcclResult.Success ? r : async;
    }

    public void Abort()
    {
        Failed = true;
        Dispose();
    }

    public void Dispose()
    {
        var comm = Interlocked.Exchange(ref _comm, 0);
        if (comm == 0) return;
        if (Failed) NcclNative.ncclCommAbort(comm);
        else NcclNative.ncclCommDestroy(comm);
    }
}

/// <summary>
/// The <c>nccl</c> backend: CUDA tensors through NCCL, one process per GPU. CPU tensors, <c>Barrier</c> and the
/// object collectives go over a tcp group formed beside it (as PyTorch users pair gloo with nccl).
/// </summary>
/// <remarks>
/// Synchronisation discipline. TorchSharp has no stream API, so libtorch queues every CUDA op of this process on the
/// device's default (legacy) stream 0, and NCCL here is also given stream 0. Stream order is therefore program
/// order: the kernels that produced a tensor run before the collective reading it, and ops issued after the
/// collective see its result, with no events or host waits. The caching allocator reuses a freed block only for
/// later work on the same stream, so freeing a tensor right after a collective is safe. Collectives return once
/// queued; anything that reads values on the host (<c>item</c>, <c>cpu()</c>) waits as usual. Before every NCCL call
/// the device's primary context is made current on the calling thread, since async continuations may move the
/// training loop between threads. Tensors must live on this rank's device; non-contiguous ones are staged.
/// With <c>VECTORLM_DESYNC_DEBUG=1</c> every collective first agrees on its fingerprint over the tcp group (one
/// small round trip), turning a desync into an error instead of a hang.
/// </remarks>
internal sealed class NcclProcessGroup : ProcessGroup
{
    readonly TcpProcessGroup _control;
    readonly NcclCommunicator _comm;
    readonly NcclWatchdog _watchdog;
    readonly nint _context;
    readonly int _device;
    readonly bool _desyncDebug;
    CancellationToken _stop;

    NcclProcessGroup(TcpProcessGroup control, NcclCommunicator comm, nint context, int device, bool desyncDebug)
        : base(control.Rank, control.WorldSize, control.Timeout)
    {
        _control = control;
        _comm = comm;
        _context = context;
        _device = device;
        _desyncDebug = desyncDebug;
        _watchdog = new NcclWatchdog(comm, control.Timeout, () => control.DescribeAbsentPeers(), message => FailProcess(control.Rank, message));
    }

    /// <summary>How long a failed rank waits for its training thread to report the failure before it exits anyway.</summary>
    internal static TimeSpan FailureExitGrace { get; set; } = TimeSpan.FromSeconds(5);

    // After an abort the training thread may sit in a CUDA wait that now returns garbage, so the rank must not go on
    // (PyTorch's async error handling tears the process down too): say why, give the thread a moment to throw the
    // recorded error through the normal path, then exit.
    static void FailProcess(int rank, string message)
    {
        Console.Error.WriteLine($"rank {rank}: error: {message}");
        Console.Error.Flush();
        Thread.Sleep(FailureExitGrace);
        Environment.Exit(1);
    }

    public override DistributedBackend Backend => DistributedBackend.Nccl;

    /// <summary>The NCCL library version, e.g. "2.28.3".</summary>
    public static string LibraryVersion => NcclNative.Version();

    public static NcclProcessGroup Create(TcpStore store, int rank, int worldSize, TimeSpan collectiveTimeout, TimeSpan joinTimeout, int cudaDevice, bool desyncDebug)
    {
        NcclNative.Version(); // a clear error when NCCL is not loadable, before any rank waits on another
        var control = TcpProcessGroup.Create(store, rank, worldSize, collectiveTimeout, joinTimeout, prefix: "nccl-control");
        try
        {
            var context = CudaDriver.PrimaryContext(cudaDevice);
            CudaDriver.MakeCurrent(context);
            NcclUniqueId id;
            unsafe
            {
                var bytes = new byte[NcclUniqueId.Bytes];
                if (rank == 0)
                {
                    NcclNative.Check(NcclNative.ncclGetUniqueId(out id), "ncclGetUniqueId");
                    new ReadOnlySpan<byte>(id.Internal, NcclUniqueId.Bytes).CopyTo(bytes);
                    store.Set("nccl/unique-id", bytes);
                }
                else
                {
                    bytes = store.Get("nccl/unique-id", joinTimeout);
                    if (bytes.Length != NcclUniqueId.Bytes) throw new DistributedException($"the NCCL unique id in the store has {bytes.Length} bytes, not {NcclUniqueId.Bytes}");
                    bytes.CopyTo(new Span<byte>(id.Internal, NcclUniqueId.Bytes));
                }
            }
            nint comm = InitCommunicator(id, rank, worldSize, context, joinTimeout, control);
            return new NcclProcessGroup(control, new NcclCommunicator(comm, context), context, cudaDevice, desyncDebug);
        }
        catch
        {
            control.Dispose();
            throw;
        }
    }

    public override void ObserveCancellation(CancellationToken token)
    {
        _stop = token;
        _control.ObserveCancellation(token);
        _watchdog.ObserveCancellation(token);
    }

    // ncclCommInitRank blocks until every rank joined; a rank that never comes would hang this one, so the call runs
    // on its own thread and the caller gives up after the rendezvous timeout (the thread stays blocked; the process
    // is about to exit with the error).
    static nint InitCommunicator(NcclUniqueId id, int rank, int worldSize, nint context, TimeSpan timeout, TcpProcessGroup control) =>
        WithTimeout(() =>
        {
            CudaDriver.MakeCurrent(context);
            NcclNative.Check(NcclNative.ncclCommInitRank(out nint comm, worldSize, id, rank), "ncclCommInitRank");
            return comm;
        }, timeout, () => $"rank {rank}: the NCCL communicator did not form within {timeout.TotalSeconds:0.#} s (the rendezvous timeout). " +
                          control.DescribeAbsentPeers() + " NCCL_DEBUG=INFO shows where NCCL's own setup waits.");

    /// <summary>
    /// Runs <paramref name="work"/>, a blocking native call that cannot be cancelled, on its own thread and returns its
    /// result; throws <see cref="CollectiveTimeoutException"/> with <paramref name="timeoutMessage"/> when it takes longer
    /// than <paramref name="timeout"/> (leaving the thread blocked), or what the work threw.
    /// </summary>
    internal static T WithTimeout<T>(Func<T> work, TimeSpan timeout, Func<string> timeoutMessage)
    {
        T result = default!;
        Exception? error = null;
        var thread = new Thread(() =>
        {
            try { result = work(); }
            catch (Exception e) { error = e; }
        }) { IsBackground = true, Name = "vectorlm-nccl-init" };
        thread.Start();
        if (!thread.Join(timeout)) throw new CollectiveTimeoutException(timeoutMessage());
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
        return result;
    }

    public override void Barrier(CallSite site)
    {
        Sequence++;
        _control.Barrier(site);
    }

    public override void AllReduce(Tensor tensor, ReduceOp op, CallSite site)
    {
        if (tensor.device_type != DeviceType.CUDA) { Sequence++; _control.AllReduce(tensor, op, site); return; }
        if (op == ReduceOp.Avg && !TensorMemory.IsFloating(tensor.dtype))
            throw new ArgumentException($"ReduceOp.Avg needs a floating-point tensor, not {TensorMemory.DTypeName(tensor.dtype)}", nameof(op));
        if (tensor.dtype == ScalarType.Bool && op is ReduceOp.Sum or ReduceOp.Avg)
            throw new ArgumentException("a bool tensor can only be all-reduced with Min or Max", nameof(op));
        CheckDevice(tensor); // before the agreement: a bad argument must fail here, not after the others committed
        var fp = Next(CollectiveKind.AllReduce, site, tensor, op);
        Agree(fp);
        if (tensor.numel() == 0) return; // every rank has the same (empty) shape; nothing to move
        var t = Staged(tensor);
        Run(() => NcclNative.ncclAllReduce(TensorMemory.DataPointer(t), TensorMemory.DataPointer(t), (nuint)t.numel(), DataType(t.dtype), RedOp(op), _comm.Handle, 0), "ncclAllReduce", fp);
        Unstage(tensor, t);
    }

    public override void Broadcast(Tensor tensor, int root, CallSite site)
    {
        CheckRoot(root, "Broadcast");
        if (tensor.device_type != DeviceType.CUDA) { Sequence++; _control.Broadcast(tensor, root, site); return; }
        CheckDevice(tensor);
        var fp = Next(CollectiveKind.Broadcast, site, tensor, root: root);
        Agree(fp);
        if (tensor.numel() == 0) return;
        var t = Staged(tensor);
        Run(() => NcclNative.ncclBroadcast(TensorMemory.DataPointer(t), TensorMemory.DataPointer(t), (nuint)t.numel(), DataType(t.dtype), root, _comm.Handle, 0), "ncclBroadcast", fp);
        Unstage(tensor, t);
    }

    public override Tensor AllGather(Tensor tensor, CallSite site)
    {
        if (tensor.device_type != DeviceType.CUDA) { Sequence++; return _control.AllGather(tensor, site); }
        CheckDevice(tensor);
        var fp = Next(CollectiveKind.AllGather, site, tensor);
        Agree(fp);
        var input = tensor.is_contiguous() ? tensor : tensor.contiguous();
        var shape = new long[tensor.dim() + 1];
        shape[0] = WorldSize;
        tensor.shape.CopyTo(shape, 1);
        var output = torch.empty(shape, tensor.dtype, tensor.device);
        if (tensor.numel() == 0) return output;
        Run(() => NcclNative.ncclAllGather(TensorMemory.DataPointer(input), TensorMemory.DataPointer(output), (nuint)input.numel(), DataType(input.dtype), _comm.Handle, 0), "ncclAllGather", fp);
        if (!ReferenceEquals(input, tensor)) input.Dispose();
        return output;
    }

    public override byte[] BroadcastBytes(byte[] value, int root, CallSite site)
    {
        Sequence++;
        return _control.BroadcastBytes(value, root, site);
    }

    public override byte[][] AllGatherBytes(byte[] value, CallSite site)
    {
        Sequence++;
        return _control.AllGatherBytes(value, site);
    }

    /// <summary>Several collectives fused into one NCCL launch (<c>ncclGroupStart</c>/<c>ncclGroupEnd</c>).</summary>
    public void Group(Action collectives)
    {
        ThrowIfUnusable();
        CudaDriver.MakeCurrent(_context);
        NcclNative.Check(NcclNative.ncclGroupStart(), "ncclGroupStart");
        _inGroup = true;
        try { collectives(); }
        finally
        {
            _inGroup = false;
            NcclNative.Check(NcclNative.ncclGroupEnd(), "ncclGroupEnd", _comm.Handle);
        }
        _watchdog.Track($"a group of NCCL collectives ending at #{Sequence - 1} on rank {Rank} of {WorldSize}");
    }

    /// <summary>Waits until the device finished all queued work (for benchmarks and tests).</summary>
    public void Synchronize()
    {
        CudaDriver.MakeCurrent(_context);
        CudaDriver.Synchronize();
        NcclNative.Check(NcclNative.ncclCommGetAsyncError(_comm.Handle, out var async), "ncclCommGetAsyncError");
        NcclNative.Check(async, "an earlier NCCL collective (asynchronous error)", _comm.Handle);
    }

    bool _inGroup;

    void Agree(Fingerprint fp)
    {
        ThrowIfUnusable();
        if (_desyncDebug) _control.Agree(fp);
    }

    void ThrowIfUnusable()
    {
        if (_stop.IsCancellationRequested)
            throw new OperationCanceledException($"rank {Rank}: the job was asked to stop; NCCL collectives no longer run", _stop);
        _watchdog.ThrowIfFailed();
    }

    void CheckDevice(Tensor t)
    {
        if (DeviceProblem(t.device_type, t.device_index, _device) is { } problem) throw new ArgumentException(problem, nameof(t));
        if (t.dtype == ScalarType.Bool) return;
        DataType(t.dtype);
    }

    /// <summary>Why a tensor on <paramref name="type"/>:<paramref name="index"/> cannot go through a communicator on cuda:<paramref name="device"/>; null when it can.</summary>
    internal static string? DeviceProblem(DeviceType type, long index, int device) =>
        type == DeviceType.CUDA && index == device ? null
            : $"this rank's NCCL communicator is on cuda:{device}, but the tensor is on {(type == DeviceType.CUDA ? $"cuda:{index}" : type.ToString().ToLowerInvariant())}; " +
              "move it with .to(ctx.Device) first";

    static Tensor Staged(Tensor tensor) => tensor.is_contiguous() ? tensor : tensor.contiguous();

    static void Unstage(Tensor tensor, Tensor staged)
    {
        if (ReferenceEquals(tensor, staged)) return;
        using (torch.no_grad()) tensor.copy_(staged);
        staged.Dispose();
    }

    void Run(Func<NcclResult> call, string name, Fingerprint fp)
    {
        CudaDriver.MakeCurrent(_context);
        var result = call();
        if (result != NcclResult.Success)
        {
            _comm.Failed = true;
            NcclNative.Check(result, name, _comm.Handle);
        }
        // Inside Group() the calls are only recorded; the group as a whole is timed when it is launched.
        if (!_inGroup) _watchdog.Track($"collective #{fp.Sequence} ({fp.Describe()}) on rank {Rank} of {WorldSize}");
    }

    internal static NcclDataType DataType(ScalarType t) => t switch
    {
        ScalarType.Float32 => NcclDataType.Float32,
        ScalarType.Float64 => NcclDataType.Float64,
        ScalarType.Float16 => NcclDataType.Float16,
        ScalarType.BFloat16 => NcclDataType.BFloat16,
        ScalarType.Int64 => NcclDataType.Int64,
        ScalarType.Int32 => NcclDataType.Int32,
        ScalarType.Int8 => NcclDataType.Int8,
        ScalarType.Byte or ScalarType.Bool => NcclDataType.Uint8,
        _ => throw new NotSupportedException($"NCCL cannot move {TensorMemory.DTypeName(t)} tensors"),
    };

    internal static NcclRedOp RedOp(ReduceOp op) => op switch
    {
        ReduceOp.Sum => NcclRedOp.Sum,
        ReduceOp.Avg => NcclRedOp.Avg,
        ReduceOp.Min => NcclRedOp.Min,
        ReduceOp.Max => NcclRedOp.Max,
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown reduction"),
    };

    public override void Dispose()
    {
        _watchdog.Dispose();
        _comm.Dispose();
        _control.Dispose();
    }
}
