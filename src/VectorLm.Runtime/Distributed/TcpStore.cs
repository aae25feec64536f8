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

    TcpStore(TcpStoreServer? server, Socket socket, TimeSpan timeout, string endpoint)
    {
        _server = server;
        _socket = socket;
        Timeout = timeout;
        Endpoint = endpoint;
    }

    /// <summary>
    /// Connects to the store at <paramref name="host"/>:<paramref name="port"/>, first starting its server when
    /// <paramref name="isServer"/> (rank 0). Clients retry until <paramref name="timeout"/> while the server comes up.
    /// </summary>
    /// <exception cref="DistributedException">The port is in use, or the server cannot be reached in time.</exception>
    public static TcpStore Connect(string host, int port, bool isServer, TimeSpan timeout, string? who = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        if (port is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(port), port, "MASTER_PORT must be in [0, 65535]");
        TcpStoreServer? server = null;
        if (isServer)
        {
            server = TcpStoreServer.Start(port);
            port = server.Port;
        }
        try
        {
            var socket = ConnectWithRetry(host, port, timeout, who);
            return new TcpStore(server, socket, timeout, $"{host}:{port}");
        }
        catch
        {
            server?.Dispose();
            throw;
        }
    }

    /// <summary>The port the server listens on when this store hosts it (useful when 0 was asked for).</summary>
    public int? ServerPort => _server?.Port;

    static Socket ConnectWithRetry(string host, int port, TimeSpan timeout, string? who)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        var delay = TimeSpan.FromMilliseconds(20);
        while (true)
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                var remaining = deadline - DateTime.UtcNow;
                using var cts = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromMilliseconds(1));
                socket.ConnectAsync(host, port, cts.Token).AsTask().GetAwaiter().GetResult();
                return socket;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException)
            {
                socket.Dispose();
                last = e;
                if (e is SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.NoData })
                    throw new DistributedException($"MASTER_ADDR '{host}' does not resolve to an address: {e.Message}", e);
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
                _socket.Send(frame);
                Span<byte> len = stackalloc byte[4];
                SocketIO.ReceiveExactly(_socket, len, "the rendezvous store");
                var reply = new byte[BinaryPrimitives.ReadInt32LittleEndian(len)];
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

    internal static byte[] ReadBytes(Stream r)
    {
        Span<byte> len = stackalloc byte[4];
        r.ReadExactly(len);
        var b = new byte[BinaryPrimitives.ReadInt32LittleEndian(len)];
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

    /// <summary>The server: one thread per client (a job has few ranks), state under one lock.</summary>
    sealed class TcpStoreServer : IDisposable
    {
        readonly Socket _listener;
        readonly Dictionary<string, byte[]> _data = new(StringComparer.Ordinal);
        readonly List<Socket> _clients = new();
        volatile bool _stopped;

        public int Port => ((IPEndPoint)_listener.LocalEndPoint!).Port;

        TcpStoreServer(Socket listener)
        {
            _listener = listener;
            new Thread(AcceptLoop) { IsBackground = true, Name = "vectorlm-store-accept" }.Start();
        }

        public static TcpStoreServer Start(int port)
        {
            var listener = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { DualMode = true };
            try
            {
                listener.Bind(new IPEndPoint(IPAddress.IPv6Any, port));
                listener.Listen(512);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                listener.Dispose();
                throw new DistributedException(
                    $"MASTER_PORT {port} is already in use on this host, so rank 0 cannot host the rendezvous store there. " +
                    "Pick another port, or leave MASTER_PORT unset and let the launcher choose a free one.", e);
            }
            catch
            {
                listener.Dispose();
                throw;
            }
            return new TcpStoreServer(listener);
        }

        void AcceptLoop()
        {
            while (!_stopped)
            {
                Socket client;
                try { client = _listener.Accept(); }
                catch (Exception) when (_stopped) { return; }
                catch (SocketException) { continue; }
                catch (ObjectDisposedException) { return; }
                client.NoDelay = true;
                lock (_clients) _clients.Add(client);
                new Thread(() => Serve(client)) { IsBackground = true, Name = "vectorlm-store-client" }.Start();
            }
        }

        void Serve(Socket client)
        {
            try
            {
                Span<byte> len = stackalloc byte[4];
                while (!_stopped)
                {
                    if (!SocketIO.TryReceiveExactly(client, len)) return; // client closed
                    var body = new byte[BinaryPrimitives.ReadInt32LittleEndian(len)];
                    SocketIO.ReceiveExactly(client, body, "a store client");
                    var reply = Handle(new MemoryStream(body));
                    var frame = reply.GetBuffer().AsSpan(0, (int)reply.Length);
                    BinaryPrimitives.WriteInt32LittleEndian(frame, frame.Length - 4);
                    client.Send(frame);
                }
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or DistributedException or EndOfStreamException)
            {
                // A client that goes away ends its own conversation; the store keeps serving the others.
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
                    var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(ReadInt64(r));
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
                        sum = (_data.TryGetValue(key, out var old) ? long.Parse(Encoding.ASCII.GetString(old), System.Globalization.CultureInfo.InvariantCulture) : 0) + delta;
                        _data[key] = Encoding.ASCII.GetBytes(sum.ToString(System.Globalization.CultureInfo.InvariantCulture));
                        Monitor.PulseAll(_data);
                    }
                    WriteInt64(w, sum);
                    break;
                }
                case Op.Wait:
                {
                    var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(ReadInt64(r));
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
                    throw new DistributedException($"store request with unknown operation {(byte)op}");
            }
            return w;
        }

        static string[] ReadKeys(Stream r)
        {
            var keys = new string[ReadInt64(r)];
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
            _listener.Dispose();
            lock (_clients) foreach (var c in _clients) c.Dispose();
        }
    }
}
