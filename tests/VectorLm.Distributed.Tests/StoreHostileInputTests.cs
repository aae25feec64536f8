using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace VectorLm.Distributed.Tests;

/// <summary>
/// The rendezvous store and the rank listeners against what a stranger on the network may send: each bad
/// connection is closed and logged, and the job carries on. Loopback only, bounded counts.
/// </summary>
public class StoreHostileInputTests
{
    sealed class Log
    {
        public readonly ConcurrentQueue<string> Lines = new();
        public void Write(string line) => Lines.Enqueue(line);
        public bool Has(string text) => Lines.Any(l => l.Contains(text, StringComparison.Ordinal));

        public void WaitFor(string text)
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
            while (!Has(text) && DateTime.UtcNow < deadline) Thread.Sleep(20);
            Assert.True(Has(text), $"no log line with '{text}'; got:\n{string.Join("\n", Lines)}");
        }
    }

    static (TcpStore Server, Log Log) Serve(string? token = "secret")
    {
        var log = new Log();
        var server = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5), security: new JobSecurity(token, Log: log.Write));
        return (server, log);
    }

    static Socket Raw(int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Connect(IPAddress.Loopback, port);
        s.ReceiveTimeout = 20_000;
        return s;
    }

    static byte[] Hello(string token)
    {
        var t = Encoding.UTF8.GetBytes(token);
        var hello = new byte[6 + t.Length];
        "VLS1"u8.CopyTo(hello);
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(4), (ushort)t.Length);
        t.CopyTo(hello, 6);
        return hello;
    }

    // True once the server closed the connection (a read returns 0 or fails).
    static bool ClosedByServer(Socket s)
    {
        var buffer = new byte[256];
        try
        {
            while (true)
            {
                int n = s.Receive(buffer);
                if (n == 0) return true;
            }
        }
        catch (SocketException e) { return e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted; }
    }

    static void AssertStillServes(TcpStore server, string token = "secret")
    {
        using var client = TcpStore.Connect("127.0.0.1", server.ServerPort!.Value, isServer: false, TimeSpan.FromSeconds(5),
            security: new JobSecurity(token));
        client.Set("alive", "yes");
        Assert.Equal("yes", server.GetString("alive"));
        Assert.Equal(1, client.Add("alive-counter", 1) - server.Add("alive-counter", 0) + 1);
    }

    [Fact]
    public void Four_bytes_to_the_store_port_close_only_that_connection()
    {
        var (server, log) = Serve();
        using var _ = server;
        using (var s = Raw(server.ServerPort!.Value))
        {
            s.Send([0xFF, 0xFF, 0xFF, 0xFF]); // read as a negative length by the store before it checked hellos
            Assert.True(ClosedByServer(s));
        }
        log.WaitFor("closed a connection from 127.0.0.1");
        AssertStillServes(server);
    }

    [Fact]
    public void An_http_probe_is_turned_away_at_the_hello()
    {
        var (server, log) = Serve();
        using var _ = server;
        using (var s = Raw(server.ServerPort!.Value))
        {
            s.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());
            Assert.True(ClosedByServer(s));
        }
        log.WaitFor("not a VectorLm store client (first bytes 'GET ')");
        AssertStillServes(server);
    }

    [Fact]
    public void Oversized_negative_and_truncated_frames_after_a_good_hello_close_that_connection()
    {
        var (server, log) = Serve();
        using var _ = server;
        int port = server.ServerPort!.Value;
        void Send(byte[] frame, bool expectClose = true)
        {
            using var s = Raw(port);
            s.Send(Hello("secret"));
            Assert.Equal(1, s.Receive(new byte[1]));
            s.Send(frame);
            if (expectClose) Assert.True(ClosedByServer(s));
        }
        Send(BitConverter.GetBytes(542_393_671)); // "GET " as a length: would have allocated half a gigabyte
        log.WaitFor("a frame of 542393671 bytes");
        Send(BitConverter.GetBytes(-5));
        log.WaitFor("a frame of -5 bytes");
        // A Set whose value length runs past the frame's end.
        var set = new MemoryStream();
        set.Write(BitConverter.GetBytes(1 + 4 + 1 + 4));
        set.WriteByte(1);
        set.Write(BitConverter.GetBytes(1));
        set.WriteByte((byte)'k');
        set.Write(BitConverter.GetBytes(int.MaxValue));
        Send(set.ToArray());
        log.WaitFor("malformed request: a field claims 2147483647 bytes");
        // An unknown operation, a Wait for 2^62 keys, and a counter added to a string.
        Send([5, 0, 0, 0, 99, 0, 0, 0, 0]);
        log.WaitFor("unknown operation 99");
        var wait = new MemoryStream();
        wait.Write(BitConverter.GetBytes(1 + 4 + 8 + 8));
        wait.WriteByte(4);
        wait.Write(BitConverter.GetBytes(0));
        wait.Write(BitConverter.GetBytes(10L));
        wait.Write(BitConverter.GetBytes(1L << 62));
        Send(wait.ToArray());
        log.WaitFor("a request for 4611686018427387904 keys");
        server.Set("text", "not a number");
        var add = new MemoryStream();
        add.Write(BitConverter.GetBytes(1 + 4 + 4 + 8));
        add.WriteByte(3);
        add.Write(BitConverter.GetBytes(4));
        add.Write("text"u8);
        add.Write(BitConverter.GetBytes(1L));
        Send(add.ToArray());
        log.WaitFor("Add on key 'text', which holds a value that is not a counter");
        // Half a frame, then the client goes away.
        using (var s = Raw(port))
        {
            s.Send(Hello("secret"));
            Assert.Equal(1, s.Receive(new byte[1]));
            s.Send([100, 0, 0, 0, 1, 2, 3]);
        }
        log.WaitFor("in the middle of a message");
        AssertStillServes(server);
    }

    [Fact]
    public void A_wrong_or_missing_token_is_refused_with_a_clear_error()
    {
        var (server, log) = Serve("right");
        using var _ = server;
        int port = server.ServerPort!.Value;
        var e = Assert.Throws<DistributedException>(() =>
            TcpStore.Connect("127.0.0.1", port, isServer: false, TimeSpan.FromSeconds(5), security: new JobSecurity("wrong")));
        Assert.Contains($"rejected this process's job token: every rank of a job needs the same {DistributedOptions.JobTokenVariable}", e.Message);
        Assert.Throws<DistributedException>(() => TcpStore.Connect("127.0.0.1", port, isServer: false, TimeSpan.FromSeconds(5)));
        log.WaitFor("a wrong job token");
        Assert.False(log.Has("without a job token"));
        AssertStillServes(server, "right");
    }

    [Fact]
    public void A_store_without_a_token_says_so_once_at_start()
    {
        var (server, log) = Serve(token: null);
        using var _ = server;
        AssertStillServes(server, token: "");
        Assert.Single(log.Lines, l => l.Contains("without a job token", StringComparison.Ordinal));
        Assert.Contains(log.Lines, l => l.Contains(DistributedOptions.JobTokenVariable, StringComparison.Ordinal));
    }

    [Fact]
    public void The_store_listens_on_MASTER_ADDR_only_unless_asked_for_all_interfaces()
    {
        using (var loopback = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5)))
            Assert.All(loopback.ServerEndpoints, ep => Assert.True(IPAddress.IsLoopback(ep.Address), ep.ToString()));
        using var all = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5), security: new JobSecurity(null, BindAllInterfaces: true));
        var ep = Assert.Single(all.ServerEndpoints);
        Assert.True(ep.Address.Equals(IPAddress.IPv6Any) || ep.Address.Equals(IPAddress.Any), ep.ToString());
    }

    [Fact]
    public void Listening_falls_back_to_IPv4_where_IPv6_is_disabled()
    {
        Socket NoIPv6(AddressFamily family) => family == AddressFamily.InterNetworkV6
            ? throw new SocketException((int)SocketError.AddressFamilyNotSupported)
            : new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        var all = SocketIO.Listen("127.0.0.1", 0, allInterfaces: true, 4, "a test", NoIPv6);
        Assert.Equal(IPAddress.Any, ((IPEndPoint)Assert.Single(all).LocalEndPoint!).Address);
        all[0].Dispose();
        // "localhost" may resolve to ::1 and 127.0.0.1; with IPv6 gone the IPv4 address still serves.
        var named = SocketIO.Listen("localhost", 0, allInterfaces: false, 4, "a test", NoIPv6);
        Assert.All(named, s => Assert.Equal(AddressFamily.InterNetwork, s.AddressFamily));
        Assert.NotEmpty(named);
        foreach (var s in named) s.Dispose();
    }

    [Fact]
    public void An_address_of_another_machine_is_a_clear_error()
    {
        var e = Assert.Throws<DistributedException>(() => SocketIO.Listen("192.0.2.1", 0, allInterfaces: false, 4, "rank 0's rendezvous store"));
        Assert.Contains("'192.0.2.1' (192.0.2.1) is not an address of this machine", e.Message);
        Assert.Contains(DistributedOptions.BindAllVariable, e.Message);
    }

    [Fact]
    public void A_multi_node_job_whose_master_addr_is_loopback_here_is_a_clear_error()
    {
        var e = Assert.Throws<DistributedException>(() => SocketIO.RequireReachableFromOtherNodes("127.0.1.1", allInterfaces: false));
        Assert.Contains("MASTER_ADDR '127.0.1.1' is 127.0.1.1 on rank 0's machine, a loopback address the other nodes cannot reach", e.Message);
        SocketIO.RequireReachableFromOtherNodes("127.0.1.1", allInterfaces: true); // listening everywhere: reachable
        SocketIO.RequireReachableFromOtherNodes("192.0.2.7", allInterfaces: false);
    }

    [Fact]
    public void Random_and_truncated_frames_never_stop_the_store()
    {
        var (server, log) = Serve();
        using var _ = server;
        int port = server.ServerPort!.Value;
        var random = new Random(1234);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        for (int i = 0; i < 150 && DateTime.UtcNow < deadline; i++)
        {
            using var s = Raw(port);
            if (i % 3 != 0) // most of them get past the hello, to reach the request parser
            {
                s.Send(Hello("secret"));
                if (s.Receive(new byte[1]) != 1) continue;
            }
            var junk = new byte[random.Next(1, 64)];
            random.NextBytes(junk);
            if (i % 2 == 0 && junk.Length >= 5)
            {
                // a plausible length and a real operation with random fields: the parser's worst case
                BinaryPrimitives.WriteInt32LittleEndian(junk, junk.Length - 4 - random.Next(0, 3));
                junk[4] = (byte)random.Next(1, 8);
                if (junk[4] is 2 or 4) junk[5..].AsSpan().Clear(); // Get/Wait on no key, 0 ms: answered at once
            }
            try { s.Send(junk); } catch (SocketException) { }
            s.Shutdown(SocketShutdown.Send);
        }
        AssertStillServes(server);
        Assert.NotEmpty(log.Lines);
    }
}
