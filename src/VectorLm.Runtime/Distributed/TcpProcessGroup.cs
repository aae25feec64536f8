using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Distributed;

/// <summary>
/// The <c>tcp</c> backend: CPU tensors over a full mesh of TCP connections (one per pair of ranks).
/// </summary>
/// <remarks>
/// Every collective starts with a handshake through rank 0: each rank sends its <see cref="Fingerprint"/> (and, for
/// the object collectives, its payload); rank 0 compares them and answers every rank with "go" or with one error
/// message, so a desync or a missing rank fails everywhere instead of hanging. That costs one round trip to rank 0.
/// Then the data moves rank to rank: all-reduce is a ring reduce-scatter plus ring all-gather (each rank sends
/// 2(n-1)/n of the tensor), with sends on a worker thread overlapping receives, and received chunks reduced while
/// the next ones arrive. Each segment is reduced by exactly one rank and then copied, so results are bit-identical
/// on all ranks.
/// </remarks>
internal sealed unsafe class TcpProcessGroup : ProcessGroup
{
    const byte FrameHeader = 1, FrameGo = 2, FrameError = 3;
    const byte ErrorDesync = 1, ErrorTimeout = 2, ErrorOther = 3;

    /// <summary>Overrides the address a rank advertises to the others.</summary>
    public const string HostAddrVariable = "VECTORLM_HOST_ADDR";

    /// <summary>Bytes received per step before reducing them; big enough for few syscalls, small enough for the cache.</summary>
    internal static int ChunkBytes { get; set; } = EnvInt("VECTORLM_TCP_CHUNK", 1 << 20);

    readonly Socket?[] _peers;
    readonly SendWorker _sender;
    readonly TensorMemory.Scratch _scratch;
    volatile string? _broken;
    CancellationToken _stop;
    CancellationTokenRegistration _stopRegistration;

    TcpProcessGroup(int rank, int worldSize, TimeSpan timeout, Socket?[] peers) : base(rank, worldSize, timeout)
    {
        _peers = peers;
        _sender = new SendWorker($"vectorlm-tcp-send-r{rank}");
        _scratch = new TensorMemory.Scratch(ChunkBytes);
    }

    public override DistributedBackend Backend => DistributedBackend.Tcp;

    /// <summary>
    /// Joins the group: publishes this rank's listening address in <paramref name="store"/> under
    /// <paramref name="prefix"/>, waits for all ranks, and connects every pair (the higher rank dials).
    /// </summary>
    public static TcpProcessGroup Create(TcpStore store, int rank, int worldSize, TimeSpan collectiveTimeout, TimeSpan joinTimeout, string prefix = "tcp")
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), worldSize, "the world size must be at least 1");
        if ((uint)rank >= (uint)worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"the rank must be in [0, {worldSize})");

        if (store.Add($"{prefix}/claim/{rank}", 1) > 1)
            throw new DistributedException($"two processes claim rank {rank}: check RANK (and the node rank) of every process");
        if (rank == 0) store.Set($"{prefix}/world_size", worldSize.ToString(CultureInfo.InvariantCulture));
        else
        {
            string theirs = GetOrMissing(store, [$"{prefix}/world_size"], [0], joinTimeout, prefix, worldSize)[0];
            if (theirs != worldSize.ToString(CultureInfo.InvariantCulture))
                throw new DistributedException($"rank {rank} was started with WORLD_SIZE={worldSize} but rank 0 with WORLD_SIZE={theirs}");
        }

        Span<byte> rankBytes = stackalloc byte[4];
        var security = store.Security;
        // Advertise the address this host reaches the store from: the interface other nodes can reach too.
        // VECTORLM_HOST_ADDR overrides it, e.g. when the hostname resolves to 127.0.1.1 on the master node.
        var local = Environment.GetEnvironmentVariable(HostAddrVariable) is { Length: > 0 } configured
            ? IPAddress.TryParse(configured, out var parsed) ? parsed
                : throw new DistributedException($"{HostAddrVariable}='{configured}' is not an IP address")
            : store.LocalAddress;
        if (local.IsIPv4MappedToIPv6) local = local.MapToIPv4();
        // Listen on that address only (all interfaces when asked), and only while the group forms.
        var listener = SocketIO.Listen(local.ToString(), 0, security.BindAllInterfaces, worldSize, $"rank {rank}'s listener")[0];
        var peers = new Socket?[worldSize];
        try
        {
            int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            store.Set($"{prefix}/addr/{rank}", new IPEndPoint(local, port).ToString());

            var keys = Enumerable.Range(0, worldSize).Select(r => $"{prefix}/addr/{r}").ToArray();
            var addresses = GetOrMissing(store, keys, Enumerable.Range(0, worldSize).ToArray(), joinTimeout, prefix, worldSize);

            for (int r = 0; r < rank; r++)
            {
                Socket s;
                try
                {
                    using var cts = new CancellationTokenSource(joinTimeout);
                    var endpoint = IPEndPoint.Parse(addresses[r]);
                    s = SocketIO.Connect([endpoint.Address], endpoint.Port, cts.Token);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    throw new DistributedException(
                        $"rank {rank} could not connect to rank {r} at {addresses[r]}: {(e is SocketException se ? se.SocketErrorCode : "timed out")}. " +
                        $"If that address is not reachable from this host, set {HostAddrVariable} on rank {r} to one that is.", e);
                }
                peers[r] = s;
                Configure(s, collectiveTimeout);
                security.Introduce(s, JobSecurity.PeerMagic, $"rank {r}", joinTimeout);
                BinaryPrimitives.WriteInt32LittleEndian(rankBytes, rank);
                SocketIO.SendAll(s, rankBytes, $"rank {r}");
            }
            AcceptHigherRanks(listener, peers, rank, worldSize, collectiveTimeout, joinTimeout, security);
        }
        catch
        {
            foreach (var p in peers) p?.Dispose();
            throw;
        }
        finally
        {
            listener.Dispose();
        }
        var group = new TcpProcessGroup(rank, worldSize, collectiveTimeout, peers);
        group.Barrier(new CallSite("rendezvous", nameof(TcpProcessGroup), 0));
        group.Sequence = 0; // users count their own collectives from 0
        return group;
    }

    // Takes connections until every higher rank is in; a connection with a wrong hello or rank is logged and
    // dropped (a port scanner must not end the job), the join timeout still applies.
    static void AcceptHigherRanks(Socket listener, Socket?[] peers, int rank, int worldSize, TimeSpan collectiveTimeout, TimeSpan joinTimeout, JobSecurity security)
    {
        Span<byte> rankBytes = stackalloc byte[4];
        var log = new JobSecurity.ThrottledLog(security.LogOrStderr);
        var deadline = DateTime.UtcNow + joinTimeout;
        while (Enumerable.Range(rank + 1, worldSize - rank - 1).Any(r => peers[r] is null))
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !listener.Poll(left, SelectMode.SelectRead))
            {
                var missing = Enumerable.Range(rank + 1, worldSize - rank - 1).Where(r => peers[r] is null);
                throw new DistributedException($"rank {rank}: ranks {string.Join(", ", missing)} did not connect within {joinTimeout.TotalSeconds:0.#} s");
            }
            Socket s;
            try { s = listener.Accept(); }
            catch (SocketException) { continue; } // the caller gave up before we took it
            string remote = JobSecurity.RemoteName(s);
            string? problem = security.Admit(s, JobSecurity.PeerMagic);
            if (problem is null)
            {
                try
                {
                    s.ReceiveTimeout = (int)JobSecurity.HelloTimeout.TotalMilliseconds;
                    SocketIO.ReceiveExactly(s, rankBytes, "a connecting rank");
                    int r = BinaryPrimitives.ReadInt32LittleEndian(rankBytes);
                    if (r <= rank || r >= worldSize || peers[r] is not null) problem = $"it claims rank {r}";
                    else
                    {
                        Configure(s, collectiveTimeout);
                        peers[r] = s;
                        continue;
                    }
                }
                catch (DistributedException e) { problem = e.Message; }
            }
            log.Write($"rank {rank}: closed a connection from {remote}: {problem}");
            s.Dispose();
        }
    }

    static string[] GetOrMissing(TcpStore store, string[] keys, int[] ranks, TimeSpan timeout, string prefix, int worldSize)
    {
        if (!store.Wait(keys, timeout))
        {
            var missing = ranks.Where(r => !store.Check([$"{prefix}/claim/{r}"])).ToList();
            throw new DistributedException(missing.Count > 0
                ? $"rendezvous timed out after {timeout.TotalSeconds:0.#} s: rank{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing)} of world size {worldSize} never joined"
                : $"rendezvous timed out after {timeout.TotalSeconds:0.#} s waiting for {string.Join(", ", keys)}");
        }
        return keys.Select(k => store.GetString(k)).ToArray();
    }

    /// <summary>Socket buffer sizes; 0 (the default) leaves them to the kernel's autotuning, which measured no worse here.</summary>
    internal static int SocketBufferBytes { get; set; } = EnvInt("VECTORLM_TCP_SOCKET_BUFFER", 0);

    static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), CultureInfo.InvariantCulture, out int v) ? v : fallback;

    internal static void Configure(Socket s, TimeSpan collectiveTimeout)
    {
        s.NoDelay = true;
        // The data phase only starts once every rank is in the collective, so a stalled receive means a stuck peer.
        s.ReceiveTimeout = (int)Math.Min(int.MaxValue, (collectiveTimeout + TimeSpan.FromSeconds(30)).TotalMilliseconds);
        s.SendTimeout = s.ReceiveTimeout;
        if (SocketBufferBytes > 0)
        {
            s.SendBufferSize = SocketBufferBytes;
            s.ReceiveBufferSize = SocketBufferBytes;
        }
    }

    string PeerName(int r) => $"rank {r}";

    /// <summary>
    /// Which ranks have closed their connection to this one (exited or crashed), for error messages of the nccl
    /// backend, whose own errors cannot say; never throws.
    /// </summary>
    internal string DescribeAbsentPeers()
    {
        var gone = new List<int>();
        for (int r = 0; r < WorldSize; r++)
        {
            var p = _peers[r];
            if (p is null) continue;
            try { if (p.Poll(0, SelectMode.SelectRead) && p.Available == 0) gone.Add(r); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { gone.Add(r); }
        }
        return gone.Count == 0
            ? $"Every other rank of {WorldSize} is still connected: they may be waiting in a different collective (VECTORLM_DESYNC_DEBUG=1 finds which) or still computing."
            : $"Rank{(gone.Count > 1 ? "s" : "")} {string.Join(", ", gone)} of {WorldSize} closed {(gone.Count > 1 ? "their connections" : "its connection")} to rank {Rank} (exited or crashed?).";
    }

    public override void ObserveCancellation(CancellationToken token)
    {
        _stop = token;
        // Shutting the connections down wakes a collective blocked in a receive on any thread; Dispose frees them.
        _stopRegistration = token.Register(() =>
        {
            _broken ??= "the job was asked to stop";
            foreach (var p in _peers)
                try { p?.Shutdown(SocketShutdown.Both); }
                catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        });
    }

    // What a collective throws once a stop was requested, whatever broke underneath.
    OperationCanceledException Stopped(Exception? inner) =>
        new($"collective #{Sequence - 1} on rank {Rank} was interrupted: the job was asked to stop", inner, _stop);

    // ---------------------------------------------------------------- collectives

    public override void Barrier(CallSite site) => Handshake(Next(CollectiveKind.Barrier, site), []);

    /// <summary>Checks that every rank is about to run the collective <paramref name="fingerprint"/> describes (the nccl backend's desync debug).</summary>
    internal void Agree(Fingerprint fingerprint) => Handshake(fingerprint, []);

    public override void AllReduce(Tensor tensor, ReduceOp op, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (op == ReduceOp.Avg && !TensorMemory.IsFloating(tensor.dtype))
            throw new ArgumentException($"ReduceOp.Avg needs a floating-point tensor, not {TensorMemory.DTypeName(tensor.dtype)}", nameof(op));
        Handshake(Next(CollectiveKind.AllReduce, site, tensor, op), []);
        if (WorldSize == 1) return;
        // Half precision is reduced in float32 (more exact, and the kernels are vectorised for it).
        bool widen = tensor.dtype is ScalarType.Float16 or ScalarType.BFloat16;
        using var staged = Stage(tensor, widen ? ScalarType.Float32 : tensor.dtype);
        Guard(() => RingAllReduce((byte*)TensorMemory.DataPointer(staged), staged.numel(), staged.dtype, op));
        Unstage(tensor, staged);
    }

    public override void Broadcast(Tensor tensor, int root, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        CheckRoot(root, "Broadcast");
        Handshake(Next(CollectiveKind.Broadcast, site, tensor, root: root), []);
        if (WorldSize == 1) return;
        using var staged = Stage(tensor, tensor.dtype);
        long bytes = staged.numel() * staged.element_size();
        var p = (byte*)TensorMemory.DataPointer(staged);
        Guard(() =>
        {
            if (Rank == root)
            {
                for (int r = 0; r < WorldSize; r++)
                    if (r != root) SocketIO.SendAll(_peers[r]!, p, bytes, PeerName(r));
            }
            else SocketIO.ReceiveExactly(_peers[root]!, p, bytes, PeerName(root));
        });
        if (Rank != root) Unstage(tensor, staged);
    }

    public override Tensor AllGather(Tensor tensor, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        Handshake(Next(CollectiveKind.AllGather, site, tensor), []);
        var shape = new long[tensor.dim() + 1];
        shape[0] = WorldSize;
        tensor.shape.CopyTo(shape, 1);
        var output = torch.empty(shape, tensor.dtype, CPU);
        using (var mine = output[Rank]) mine.copy_(tensor);
        if (WorldSize > 1)
        {
            long slot = tensor.numel() * tensor.element_size();
            var p = (byte*)TensorMemory.DataPointer(output);
            Guard(() => RingAllGather(p, r => (r * slot, slot), Rank));
        }
        if (tensor.device_type == DeviceType.CPU) return output;
        using (output) return output.to(tensor.device);
    }

    public override byte[] BroadcastBytes(byte[] value, int root, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(value);
        CheckRoot(root, "Broadcast");
        var payloads = Handshake(Next(CollectiveKind.BroadcastObject, site, root: root), Rank == root ? value : []);
        return payloads[root];
    }

    public override byte[][] AllGatherBytes(byte[] value, CallSite site)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Handshake(Next(CollectiveKind.AllGatherObject, site), value);
    }

    // A contiguous CPU tensor of the given dtype holding the tensor's values: the tensor itself when it already is one.
    static Tensor Stage(Tensor tensor, ScalarType dtype)
    {
        if (tensor.device_type == DeviceType.CPU && tensor.dtype == dtype && tensor.is_contiguous())
            return tensor.alias();
        using var converted = tensor.to(dtype, CPU); // our handle only: the result keeps the data alive
        return converted.contiguous();
    }

    static void Unstage(Tensor tensor, Tensor staged)
    {
        if (staged.Handle == tensor.Handle) return;
        if (tensor.device_type == DeviceType.CPU && tensor.dtype == staged.dtype && tensor.is_contiguous() &&
            TensorMemory.DataPointer(tensor) == TensorMemory.DataPointer(staged)) return;
        using (torch.no_grad()) tensor.copy_(staged);
    }

    // Runs the data phase; any failure leaves the connections in an unknown state, so the group becomes unusable.
    void Guard(Action dataPhase)
    {
        try { dataPhase(); }
        catch (Exception e) when (_stop.IsCancellationRequested)
        {
            throw Stopped(e);
        }
        catch (Exception e)
        {
            _broken ??= e.Message;
            throw e as DistributedException ?? new DistributedException($"collective #{Sequence - 1} failed: {e.Message}", e);
        }
    }

    // ---------------------------------------------------------------- data movement

    int Mod(int i) => ((i % WorldSize) + WorldSize) % WorldSize;

    void RingAllReduce(byte* data, long count, ScalarType type, ReduceOp op)
    {
        int n = WorldSize;
        long es = ElementSize(type);
        long SegStart(int i) => count * i / n;
        var next = _peers[Mod(Rank + 1)]!;
        var prev = _peers[Mod(Rank - 1)]!;
        string nextName = PeerName(Mod(Rank + 1)), prevName = PeerName(Mod(Rank - 1));
        long chunkElems = Math.Max(1, _scratch.Length / es);

        // Reduce-scatter: after n-1 steps this rank holds the full reduction of segment Rank+1. In the last step each
        // chunk is queued for sending as soon as it is final, so the all-gather's first step overlaps the reduction
        // (the socket keeps the order: the rest of the reduce-scatter data first, then the reduced chunks).
        for (int k = 0; k < n - 1; k++)
        {
            bool last = k == n - 2;
            int s = Mod(Rank - k), r = Mod(Rank - k - 1);
            _sender.Enqueue(next, data + SegStart(s) * es, (SegStart(s + 1) - SegStart(s)) * es, nextName);
            long begin = SegStart(r), end = SegStart(r + 1);
            for (long at = begin; at < end; at += chunkElems)
            {
                long m = Math.Min(chunkElems, end - at);
                SocketIO.ReceiveExactly(prev, _scratch.Pointer, m * es, prevName);
                TensorMemory.Reduce(type, op, data + at * es, _scratch.Pointer, m);
                if (!last) continue;
                if (op == ReduceOp.Avg) TensorMemory.Divide(type, data + at * es, m, n);
                _sender.Enqueue(next, data + at * es, m * es, nextName);
            }
            if (!last) _sender.WaitAll();
        }
        int own = Mod(Rank + 1);
        RingAllGather(data, i => (SegStart(i) * es, (SegStart(i + 1) - SegStart(i)) * es), own, ownAlreadySent: true);
    }

    /// <summary>
    /// Ring all-gather of byte segments; this rank starts out owning segment <paramref name="own"/>. When
    /// <paramref name="ownAlreadySent"/>, the first step's send is already queued.
    /// </summary>
    void RingAllGather(byte* data, Func<int, (long Offset, long Length)> segment, int own, bool ownAlreadySent = false)
    {
        var next = _peers[Mod(Rank + 1)]!;
        var prev = _peers[Mod(Rank - 1)]!;
        string nextName = PeerName(Mod(Rank + 1)), prevName = PeerName(Mod(Rank - 1));
        for (int k = 0; k < WorldSize - 1; k++)
        {
            var (so, sl) = segment(Mod(own - k));
            var (ro, rl) = segment(Mod(own - k - 1));
            if (k > 0 || !ownAlreadySent) _sender.Enqueue(next, data + so, sl, nextName);
            SocketIO.ReceiveExactly(prev, data + ro, rl, prevName);
            _sender.WaitAll();
        }
        _sender.WaitAll();
    }

    static long ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => 1,
    };

    // ---------------------------------------------------------------- handshake

    /// <summary>Exchanges fingerprints through rank 0; returns the payloads by rank (empty arrays when none).</summary>
    byte[][] Handshake(Fingerprint mine, byte[] payload)
    {
        if (_stop.IsCancellationRequested) throw Stopped(null);
        if (_broken is not null)
            throw new DistributedException($"the process group is unusable after an earlier failure: {_broken}");
        if (WorldSize == 1) return [payload];
        try
        {
            return Rank == 0 ? HandshakeAsRoot(mine, payload) : HandshakeAsLeaf(mine, payload);
        }
        catch (Exception e) when (_stop.IsCancellationRequested)
        {
            throw Stopped(e);
        }
        catch (DistributedException e)
        {
            _broken ??= e.Message;
            throw;
        }
    }

    byte[][] HandshakeAsRoot(Fingerprint mine, byte[] payload)
    {
        var fingerprints = new Fingerprint?[WorldSize];
        var payloads = new byte[WorldSize][];
        fingerprints[0] = mine;
        payloads[0] = payload;
        var pending = new HashSet<int>(Enumerable.Range(1, WorldSize - 1));
        var failures = new List<string>();
        var deadline = DateTime.UtcNow + Timeout;
        while (pending.Count > 0)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero) break;
            var ready = pending.Select(r => _peers[r]!).ToList();
            Socket.Select(ready, null, null, (int)Math.Min(left.TotalMicroseconds, 1_000_000));
            foreach (var socket in ready)
            {
                int r = Array.IndexOf(_peers, socket);
                pending.Remove(r);
                try
                {
                    var frame = ReadFrame(socket, PeerName(r));
                    if (frame.Type != FrameHeader) throw new DistributedException($"rank {r} sent an unexpected message ({frame.Type}) instead of a collective header");
                    var body = new MemoryStream(frame.Body);
                    fingerprints[r] = Fingerprint.Read(body);
                    payloads[r] = TcpStore.ReadBytes(body);
                }
                catch (DistributedException e) { failures.Add($"rank {r}: {e.Message}"); }
            }
        }

        string? error = null;
        byte kind = ErrorOther;
        if (failures.Count > 0)
            error = $"collective #{mine.Sequence} ({mine.Describe()} on rank 0) failed: {string.Join("; ", failures)}";
        else if (pending.Count > 0)
        {
            kind = ErrorTimeout;
            var arrived = Enumerable.Range(0, WorldSize).Where(r => fingerprints[r] is not null);
            error = $"collective #{mine.Sequence} timed out after {Timeout.TotalSeconds:0.#} s: rank{(pending.Count > 1 ? "s" : "")} " +
                    $"{string.Join(", ", pending.Order())} did not arrive." +
                    string.Concat(arrived.Select(r => $"\n  rank {r} waited in {fingerprints[r]!.Describe()}"));
        }
        else if (Fingerprint.FindMismatch(fingerprints!) is { } mismatch)
        {
            kind = ErrorDesync;
            error = mismatch;
        }

        if (error is not null)
        {
            var w = new MemoryStream();
            w.WriteByte(kind);
            TcpStore.WriteString(w, error);
            for (int r = 1; r < WorldSize; r++)
                if (fingerprints[r] is not null)
                    try { WriteFrame(_peers[r]!, FrameError, w.ToArray(), PeerName(r)); }
                    catch (DistributedException) { /* that rank is gone; the others still hear why */ }
            throw Error(kind, error);
        }

        var go = new MemoryStream();
        if (mine.Kind is CollectiveKind.BroadcastObject or CollectiveKind.AllGatherObject)
            foreach (var p in payloads) TcpStore.WriteBytes(go, p);
        var goBytes = go.ToArray();
        for (int r = 1; r < WorldSize; r++) WriteFrame(_peers[r]!, FrameGo, goBytes, PeerName(r));
        return payloads;
    }

    byte[][] HandshakeAsLeaf(Fingerprint mine, byte[] payload)
    {
        var root = _peers[0]!;
        var header = new MemoryStream();
        mine.Write(header);
        TcpStore.WriteBytes(header, payload);
        WriteFrame(root, FrameHeader, header.ToArray(), "rank 0");

        // Rank 0 answers once everyone arrived or its own timeout fired; allow for it having arrived a little later.
        var wait = Timeout + TimeSpan.FromSeconds(Math.Max(5, Timeout.TotalSeconds / 10));
        var deadline = DateTime.UtcNow + wait;
        while (!root.Poll((int)Math.Min(Math.Max(0, (deadline - DateTime.UtcNow).TotalMicroseconds), 1_000_000), SelectMode.SelectRead))
        {
            if (DateTime.UtcNow >= deadline)
                throw new CollectiveTimeoutException(
                    $"collective #{mine.Sequence} timed out after {wait.TotalSeconds:0.#} s on rank {Rank} ({mine.Describe()}): " +
                    "rank 0 did not answer, so rank 0 did not arrive (or is still waiting for other ranks)");
        }
        var frame = ReadFrame(root, "rank 0");
        var body = new MemoryStream(frame.Body);
        if (frame.Type == FrameError)
        {
            byte kind = (byte)body.ReadByte();
            throw Error(kind, TcpStore.ReadString(body));
        }
        if (frame.Type != FrameGo) throw new DistributedException($"rank 0 sent an unexpected message ({frame.Type}) during a handshake");
        if (mine.Kind is not (CollectiveKind.BroadcastObject or CollectiveKind.AllGatherObject)) return [];
        var payloads = new byte[WorldSize][];
        for (int r = 0; r < WorldSize; r++) payloads[r] = TcpStore.ReadBytes(body);
        return payloads;
    }

    static DistributedException Error(byte kind, string message) => kind switch
    {
        ErrorDesync => new CollectiveDesyncException(message),
        ErrorTimeout => new CollectiveTimeoutException(message),
        _ => new DistributedException(message),
    };

    static void WriteFrame(Socket socket, byte type, byte[] body, string peer)
    {
        var frame = new byte[5 + body.Length];
        BinaryPrimitives.WriteInt32LittleEndian(frame, body.Length + 1);
        frame[4] = type;
        body.CopyTo(frame, 5);
        SocketIO.SendAll(socket, frame, peer);
    }

    static (byte Type, byte[] Body) ReadFrame(Socket socket, string peer)
    {
        Span<byte> head = stackalloc byte[5];
        SocketIO.ReceiveExactly(socket, head, peer);
        int length = BinaryPrimitives.ReadInt32LittleEndian(head);
        if (length < 1 || length == int.MaxValue) throw new DistributedException($"{peer} sent a malformed message (length {length})");
        var body = new byte[length - 1];
        SocketIO.ReceiveExactly(socket, body, peer);
        return (head[4], body);
    }

    public override void Dispose()
    {
        _broken ??= "the process group was disposed";
        _stopRegistration.Dispose();
        foreach (var p in _peers) p?.Dispose();
        _sender.Dispose();
        _scratch.Dispose();
    }

    /// <summary>One thread that performs queued sends in order while the caller receives.</summary>
    sealed class SendWorker : IDisposable
    {
        readonly Queue<(Socket Socket, nint Data, long Length, string Peer)> _queue = new();
        readonly Thread _thread;
        int _pending;
        Exception? _error;
        bool _stop;

        public SendWorker(string name)
        {
            _thread = new Thread(Loop) { IsBackground = true, Name = name };
            _thread.Start();
        }

        public void Enqueue(Socket socket, byte* data, long length, string peer)
        {
            lock (_queue)
            {
                if (_error is not null) return; // WaitAll reports it
                _queue.Enqueue((socket, (nint)data, length, peer));
                _pending++;
                Monitor.PulseAll(_queue);
            }
        }

        /// <summary>Waits until every queued send is done; rethrows the first send failure.</summary>
        public void WaitAll()
        {
            lock (_queue)
            {
                while (_pending > 0 && _error is null) Monitor.Wait(_queue);
                if (_error is { } e)
                    throw e as DistributedException ?? new DistributedException($"send failed: {e.Message}", e);
            }
        }

        void Loop()
        {
            while (true)
            {
                (Socket Socket, nint Data, long Length, string Peer) item;
                lock (_queue)
                {
                    while (_queue.Count == 0 && !_stop) Monitor.Wait(_queue);
                    if (_stop) return;
                    item = _queue.Dequeue();
                }
                try
                {
                    SocketIO.SendAll(item.Socket, (byte*)item.Data, item.Length, item.Peer);
                    lock (_queue) { _pending--; Monitor.PulseAll(_queue); }
                }
                catch (Exception e)
                {
                    lock (_queue)
                    {
                        _error ??= e;
                        _queue.Clear();
                        _pending = 0;
                        Monitor.PulseAll(_queue);
                    }
                }
            }
        }

        public void Dispose()
        {
            lock (_queue) { _stop = true; Monitor.PulseAll(_queue); }
        }
    }
}
