using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace VectorLm.Distributed;

/// <summary>
/// A key-value store served over TCP with the semantics of PyTorch's <c>TCPStore</c>: <c>Set</c>,
/// <see cref="Get"/> (waits until the key exists), <see cref="Add"/> (atomic counter), <see cref="Wait"/> and
/// <see cref="Check"/>. Rank 0 hosts the server at MASTER_ADDR:MASTER_PORT; every rank (rank 0 included) is a client.
/// It bootstraps every backend: addresses of the ranks, the NCCL unique id.
/// </summary>
internal sealed class TcpStore : IDisposable
{
    enum Op : byte { Set = 1, Get = 2, Add = 3, Wait = 4, Check = 5, Delete = 6 }
    enum Status : byte { Ok = 0, Timeout = 1 }

    readonly TcpStoreServer? _server;
    readonly Socket _socket;
    readonly object _lock = new();

    /// <summary>Default time <see cref="Get"/> and <see cref="Wait"/> wait for a key.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The host and port this client talks to.</summary>
    public string Endpoint { get; }

    /// <summary>The local address of the connection to the store: the address other nodes can reach this one at.</summary>
    public IPAddress LocalAddress => ((IPEndPoint)_socket.LocalEndPoint!).Address;

    /// <summary>Who may connect, and where the server listens; the rank listeners follow the same rules.</summary>
    public JobSecurity Security { get; }

    TcpStore(TcpStoreServer? server, Socket socket, TimeSpan timeout, string endpoint, JobSecurity security)
    {
        _server = server;
        _socket = socket;
        Timeout = timeout;
        Endpoint = endpoint;
        Security = security;
    }

    /// <summary>
    /// Connects to the store at <paramref name="host"/>:<paramref name="port"/>, first starting its server when
    /// <paramref name="isServer"/> (rank 0). Clients retry until <paramref name="timeout"/> while the server comes up.
    /// The server listens on <paramref name="host"/>'s addresses only, unless <paramref name="security"/> asks for all
    /// interfaces, and admits only connections that present its job token.
    /// </summary>
    /// <exception cref="DistributedException">The port is in use, the server cannot be reached in time, or it rejected the token.</exception>
    public static TcpStore Connect(string host, int port, bool isServer, TimeSpan timeout, string? who = null, JobSecurity? security = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        if (port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), port, "MASTER_PORT must be in [0, 65535]");
        security ??= JobSecurity.Default;
        TcpStoreServer? server = null;
        if (isServer)
        {
            server = TcpStoreServer.Start(host, port, security);
            port = server.Port;
        }
        try
        {
            var socket = ConnectWithRetry(host, port, timeout, who, security);
            return new TcpStore(server, socket, timeout, $"{host}:{port}", security);
        }
        catch
        {
            server?.Dispose();
            throw;
        }
    }

    /// <summary>The port the server listens on when this store hosts it (useful when 0 was asked for).</summary>
    public int? ServerPort => _server?.Port;

    /// <summary>The addresses the server listens on when this store hosts it.</summary>
    internal IReadOnlyList<IPEndPoint> ServerEndpoints => _server?.Endpoints ?? [];

    /// <summary>Largest request or reply frame; anything longer is malformed (the store holds addresses and ids, not data).</summary>
    public const int MaxFrameBytes = 16 << 20;

    static Socket ConnectWithRetry(string host, int port, TimeSpan timeout, string? who, JobSecurity security)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        var delay = TimeSpan.FromMilliseconds(20);
        IPAddress[] addresses;
        try { addresses = SocketIO.Resolve(host); }
        catch (DistributedException e) { throw new DistributedException($"MASTER_ADDR {e.Message}", e.InnerException); }
        while (true)
        {
            Socket? socket = null;
            try
            {
                var remaining = deadline - DateTime.UtcNow;
                using var cts = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromMilliseconds(1));
                socket = SocketIO.Connect(addresses, port, cts.Token);
                socket.NoDelay = true;
                security.Introduce(socket, JobSecurity.StoreMagic, $"the rendezvous store at {host}:{port}");
                return socket;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                socket?.Dispose();
                last = e;
            }
            catch
            {
                socket?.Dispose();
                throw;
            }
            if (DateTime.UtcNow + delay >= deadline)
                throw new DistributedException(
                    $"could not reach the rendezvous store at {host}:{port} within {timeout.TotalSeconds:0.#} s{(who is null ? "" : $" ({who})")}: " +
                    $"{(last is SocketException se ? se.SocketErrorCode.ToString() : "timed out")}. Check that rank 0 is running and that " +
                    "MASTER_ADDR and MASTER_PORT name its host and port.", last);
            Thread.Sleep(delay);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 500));
        }
    }

    /// <summary>Stores <paramref name="value"/> under <paramref name="key"/>, waking ranks waiting for it.</summary>
    public void Set(string key, ReadOnlySpan<byte> value)
    {
        var w = Request(Op.Set, key);
        WriteBytes(w, value);
        Call(w, TimeSpan.FromSeconds(60), _ => true);
    }

    /// <summary>Stores a UTF-8 string.</summary>
    public void Set(string key, string value) => Set(key, Encoding.UTF8.GetBytes(value));

    /// <summary>Returns the value of <paramref name="key"/>, waiting up to <paramref name="timeout"/> for it to be set.</summary>
    /// <exception cref="TimeoutException">The key was not set in time.</exception>
    public byte[] Get(string key, TimeSpan? timeout = null)
    {
        var t = timeout ?? Timeout;
        var w = Request(Op.Get, key);
        WriteInt64(w, (long)t.TotalMilliseconds);
        byte[]? value = null;
        bool ok = Call(w, t, r => { if (r.ReadByte() != (byte)Status.Ok) return false; value = ReadBytes(r); return true; });
        if (!ok) throw new TimeoutException($"store key '{key}' was not set within {t.TotalSeconds:0.#} s");
        return value!;
    }

    /// <summary>Returns the UTF-8 string value of <paramref name="key"/>, waiting for it.</summary>
    public string GetString(string key, TimeSpan? timeout = null) => Encoding.UTF8.GetString(Get(key, timeout));

    /// <summary>Atomically adds <paramref name="delta"/> to the counter <paramref name="key"/> (0 when new) and returns the sum.</summary>
    public long Add(string key, long delta)
    {
        var w = Request(Op.Add, key);
        WriteInt64(w, delta);
        long result = 0;
        Call(w, TimeSpan.FromSeconds(60), r => { result = ReadInt64(r); return true; });
        return result;
    }

    /// <summary>Waits until every key exists; returns false (never throws) on timeout.</summary>
    public bool Wait(IReadOnlyList<string> keys, TimeSpan? timeout = null)
    {
        var t = timeout ?? Timeout;
        var w = Request(Op.Wait, "");
        WriteInt64(w, (long)t.TotalMilliseconds);
        WriteInt64(w, keys.Count);
        foreach (var k in keys) WriteString(w, k);
        return Call(w, t, r => r.ReadByte() == (byte)Status.Ok);
    }

    /// <summary>True when every key exists, without waiting.</summary>
    public bool Check(IReadOnlyList<string> keys)
    {
        var w = Request(Op.Check, "");
        WriteInt64(w, keys.Count);
        foreach (var k in keys) WriteString(w, k);
        return Call(w, TimeSpan.FromSeconds(60), r => r.ReadByte() == 1);
    }

    /// <summary>Removes <paramref name="key"/>; returns whether it existed.</summary>
    public bool Delete(string key) => Call(Request(Op.Delete, key), TimeSpan.FromSeconds(60), r => r.ReadByte() == 1);

    static MemoryStream Request(Op op, string key)
    {
        var w = new MemoryStream();
        w.Write(stackalloc byte[4]); // frame length, patched in Call
        w.WriteByte((byte)op);
        WriteString(w, key);
        return w;
    }

    bool Call(MemoryStream request, TimeSpan wait, Func<Stream, bool> readReply)
    {
        var frame = request.GetBuffer().AsSpan(0, (int)request.Length);
        BinaryPrimitives.WriteInt32LittleEndian(frame, frame.Length - 4);
        lock (_lock)
        {
            // The server answers a waiting request when its own timer expires; allow it some slack on top.
            _socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, wait.TotalMilliseconds + 30_000);
            try
            {
                SocketIO.SendAll(_socket, frame, "the rendezvous store");
                Span<byte> len = stackalloc byte[4];
                SocketIO.ReceiveExactly(_socket, len, "the rendezvous store");
                int length = BinaryPrimitives.ReadInt32LittleEndian(len);
                if (length is < 0 or > MaxFrameBytes)
                    throw new DistributedException($"the rendezvous store at {Endpoint} sent a malformed reply (length {length})");
                var reply = new byte[length];
                SocketIO.ReceiveExactly(_socket, reply, "the rendezvous store");
                return readReply(new MemoryStream(reply));
            }
            catch (SocketException e)
            {
                throw new DistributedException($"lost the connection to the rendezvous store at {Endpoint}: {e.SocketErrorCode}", e);
            }
        }
    }

    internal static void WriteString(Stream w, string s) => WriteBytes(w, Encoding.UTF8.GetBytes(s));

    internal static string ReadString(Stream r) => Encoding.UTF8.GetString(ReadBytes(r));

    internal static void WriteBytes(Stream w, ReadOnlySpan<byte> b)
    {
        Span<byte> len = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(len, b.Length);
        w.Write(len);
        w.Write(b);
    }

    /// <summary>Reads a length-prefixed byte string from a message held in memory; a length past its end is malformed.</summary>
    /// <exception cref="InvalidDataException">The length is negative or longer than what is left of the message.</exception>
    internal static byte[] ReadBytes(Stream r)
    {
        Span<byte> len = stackalloc byte[4];
        r.ReadExactly(len);
        int length = BinaryPrimitives.ReadInt32LittleEndian(len);
        if (length < 0 || (r.CanSeek && length > r.Length - r.Position))
            throw new InvalidDataException($"a field claims {length} bytes but the message has {(r.CanSeek ? r.Length - r.Position : 0)} left");
        var b = new byte[length];
        r.ReadExactly(b);
        return b;
    }

    internal static void WriteInt64(Stream w, long v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        w.Write(b);
    }

    internal static long ReadInt64(Stream r)
    {
        Span<byte> b = stackalloc byte[8];
        r.ReadExactly(b);
        return BinaryPrimitives.ReadInt64LittleEndian(b);
    }

    /// <summary>Closes the connection; the rank hosting the server also stops it.</summary>
    public void Dispose()
    {
        _socket.Dispose();
        _server?.Dispose();
    }

    /// <summary>
    /// The server: one thread per admitted client (a job has few ranks), state under one lock. Whatever a connection
    /// sends, the worst outcome is that this connection is closed and logged: a wrong hello, a frame longer than
    /// <see cref="MaxFrameBytes"/>, a truncated or garbled request.
    /// </summary>
    sealed class TcpStoreServer : IDisposable
    {
        /// <summary>Connections served at once; more are refused (a job has a few ranks, each with one or two).</summary>
        const int MaxClients = 1024;

        readonly List<Socket> _listeners;
        readonly JobSecurity _security;
        readonly JobSecurity.ThrottledLog _log;
        readonly Dictionary<string, byte[]> _data = new(StringComparer.Ordinal);
        readonly List<Socket> _clients = new();
        volatile bool _stopped;

        public int Port => ((IPEndPoint)_listeners[0].LocalEndPoint!).Port;

        public IReadOnlyList<IPEndPoint> Endpoints => _listeners.Select(l => (IPEndPoint)l.LocalEndPoint!).ToArray();

        TcpStoreServer(List<Socket> listeners, JobSecurity security)
        {
            _listeners = listeners;
            _security = security;
            _log = new JobSecurity.ThrottledLog(security.LogOrStderr);
            foreach (var l in listeners)
                new Thread(() => AcceptLoop(l)) { IsBackground = true, Name = "vectorlm-store-accept" }.Start();
        }

        public static TcpStoreServer Start(string host, int port, JobSecurity security)
        {
            var listeners = SocketIO.Listen(host, port, security.BindAllInterfaces, 512, "rank 0's rendezvous store (MASTER_PORT)");
            var server = new TcpStoreServer(listeners, security);
            if (!security.IsAuthenticated)
                security.LogOrStderr($"vectorlm store: listening on {string.Join(", ", listeners.Select(l => l.LocalEndPoint))} without a job token, " +
                                     $"so any VectorLm client that reaches it is admitted; set {DistributedOptions.JobTokenVariable} on every rank to require one");
            return server;
        }

        void AcceptLoop(Socket listener)
        {
            while (!_stopped)
            {
                Socket client;
                try { client = listener.Accept(); }
                catch (Exception) when (_stopped) { return; }
                catch (SocketException) { continue; }
                catch (ObjectDisposedException) { return; }
                lock (_clients)
                {
                    if (_clients.Count >= MaxClients)
                    {
                        _log.Write($"vectorlm store: refused a connection from {JobSecurity.RemoteName(client)}: {MaxClients} connections are open already");
                        client.Dispose();
                        continue;
                    }
                    _clients.Add(client);
                }
                new Thread(() => Serve(client)) { IsBackground = true, Name = "vectorlm-store-client" }.Start();
            }
        }

        void Serve(Socket client)
        {
            string remote = JobSecurity.RemoteName(client);
            try
            {
                client.NoDelay = true;
                if (_security.Admit(client, JobSecurity.StoreMagic) is { } refused)
                {
                    _log.Write($"vectorlm store: closed a connection from {remote}: {refused}");
                    return;
                }
                Span<byte> len = stackalloc byte[4];
                while (!_stopped)
                {
                    if (!SocketIO.TryReceiveExactly(client, len, $"store client {remote}")) return; // client closed
                    int length = BinaryPrimitives.ReadInt32LittleEndian(len);
                    if (length is < 1 or > MaxFrameBytes)
                    {
                        _log.Write($"vectorlm store: closed the connection from {remote}: a frame of {length} bytes (1 to {MaxFrameBytes} allowed)");
                        return;
                    }
                    var body = new byte[length];
                    SocketIO.ReceiveExactly(client, body, $"store client {remote}");
                    var reply = Handle(new MemoryStream(body));
                    var frame = reply.GetBuffer().AsSpan(0, (int)reply.Length);
                    BinaryPrimitives.WriteInt32LittleEndian(frame, frame.Length - 4);
                    SocketIO.SendAll(client, frame, $"store client {remote}");
                }
            }
            catch (Exception) when (_stopped)
            {
                // shutting down
            }
            catch (Exception e)
            {
                // Whatever a client sends, only its own connection ends: the store keeps serving the others.
                _log.Write($"vectorlm store: closed the connection from {remote}: {(e is DistributedException ? "" : "malformed request: ")}{e.Message}");
            }
            finally
            {
                lock (_clients) _clients.Remove(client);
                client.Dispose();
            }
        }

        MemoryStream Handle(MemoryStream r)
        {
            var op = (Op)r.ReadByte();
            string key = ReadString(r);
            var w = new MemoryStream();
            w.Write(stackalloc byte[4]);
            switch (op)
            {
                case Op.Set:
                {
                    var value = ReadBytes(r);
                    lock (_data) { _data[key] = value; Monitor.PulseAll(_data); }
                    w.WriteByte(0);
                    break;
                }
                case Op.Get:
                {
                    var deadline = Deadline(ReadInt64(r));
                    byte[]? value;
                    lock (_data)
                    {
                        while (!_data.TryGetValue(key, out value) && WaitUntil(deadline)) { }
                    }
                    if (value is null) w.WriteByte((byte)Status.Timeout);
                    else { w.WriteByte((byte)Status.Ok); WriteBytes(w, value); }
                    break;
                }
                case Op.Add:
                {
                    long delta = ReadInt64(r), sum;
                    lock (_data)
                    {
                        long old = 0;
                        if (_data.TryGetValue(key, out var bytes) &&
                            !long.TryParse(Encoding.ASCII.GetString(bytes), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out old))
                            throw new InvalidDataException($"Add on key '{key}', which holds a value that is not a counter");
                        sum = unchecked(old + delta);
                        _data[key] = Encoding.ASCII.GetBytes(sum.ToString(System.Globalization.CultureInfo.InvariantCulture));
                        Monitor.PulseAll(_data);
                    }
                    WriteInt64(w, sum);
                    break;
                }
                case Op.Wait:
                {
                    var deadline = Deadline(ReadInt64(r));
                    var keys = ReadKeys(r);
                    bool all;
                    lock (_data)
                    {
                        while (!(all = keys.All(_data.ContainsKey)) && WaitUntil(deadline)) { }
                    }
                    w.WriteByte(all ? (byte)Status.Ok : (byte)Status.Timeout);
                    break;
                }
                case Op.Check:
                {
                    var keys = ReadKeys(r);
                    lock (_data) w.WriteByte(keys.All(_data.ContainsKey) ? (byte)1 : (byte)0);
                    break;
                }
                case Op.Delete:
                    lock (_data) w.WriteByte(_data.Remove(key) ? (byte)1 : (byte)0);
                    break;
                default:
                    throw new InvalidDataException($"unknown operation {(byte)op}");
            }
            if (r.Position != r.Length) throw new InvalidDataException($"{r.Length - r.Position} bytes after the end of a {op} request");
            return w;
        }

        // A client's wait in milliseconds, clamped to [0, 1 day] so no value from the wire overflows a date.
        static DateTime Deadline(long milliseconds) =>
            DateTime.UtcNow + TimeSpan.FromMilliseconds(Math.Clamp(milliseconds, 0, (long)TimeSpan.FromDays(1).TotalMilliseconds));

        static string[] ReadKeys(MemoryStream r)
        {
            long count = ReadInt64(r);
            // Each key takes at least its 4-byte length, so a count the message cannot hold is malformed.
            if (count < 0 || count > (r.Length - r.Position) / 4) throw new InvalidDataException($"a request for {count} keys");
            var keys = new string[count];
            for (int i = 0; i < keys.Length; i++) keys[i] = ReadString(r);
            return keys;
        }

        // Waits on the data lock (held by the caller) until pulsed or the deadline; false once the deadline passed.
        bool WaitUntil(DateTime deadline)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || _stopped) return false;
            Monitor.Wait(_data, left < TimeSpan.FromSeconds(1) ? left : TimeSpan.FromSeconds(1));
            return true;
        }

        public void Dispose()
        {
            _stopped = true;
            foreach (var l in _listeners) l.Dispose();
            lock (_clients) foreach (var c in _clients) c.Dispose();
        }
    }
}
