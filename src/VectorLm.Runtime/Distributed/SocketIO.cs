using System.Net;
using System.Net.Sockets;

namespace VectorLm.Distributed;

/// <summary>Blocking whole-buffer socket reads and writes with errors that name the other side; listening and dialing.</summary>
static class SocketIO
{
    /// <summary>
    /// Listening sockets on <paramref name="port"/> (0: a free one, the same on every socket) for every address
    /// <paramref name="host"/> resolves to on this machine, or on all interfaces when <paramref name="allInterfaces"/>
    /// (IPv6 dual-stack, or IPv4 alone where the kernel has IPv6 disabled).
    /// </summary>
    /// <param name="host">MASTER_ADDR, or the address a rank advertises.</param>
    /// <param name="port">The port; 0 picks a free one.</param>
    /// <param name="allInterfaces">Ignore <paramref name="host"/> and listen everywhere.</param>
    /// <param name="backlog">Pending connections the kernel queues.</param>
    /// <param name="what">Who listens, for error messages.</param>
    /// <param name="newSocket">Creates a socket of a family (tests inject failures); null: the real constructor.</param>
    /// <exception cref="DistributedException">The port is taken, or no address of <paramref name="host"/> is local.</exception>
    public static List<Socket> Listen(string host, int port, bool allInterfaces, int backlog, string what, Func<AddressFamily, Socket>? newSocket = null)
    {
        newSocket ??= family => new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        if (allInterfaces)
        {
            try { return [Bind(newSocket, IPAddress.IPv6Any, port, backlog, what)]; }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressFamilyNotSupported or SocketError.ProtocolNotSupported)
            {
                return [Bind(newSocket, IPAddress.Any, port, backlog, what)];
            }
        }
        var addresses = Resolve(host);
        var sockets = new List<Socket>();
        SocketException? last = null;
        try
        {
            foreach (var address in addresses)
            {
                try
                {
                    var s = Bind(newSocket, address, port, backlog, what);
                    sockets.Add(s);
                    port = ((IPEndPoint)s.LocalEndPoint!).Port; // the other addresses share the port picked first
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.AddressNotAvailable or SocketError.AddressFamilyNotSupported
                                                    or SocketError.ProtocolNotSupported)
                {
                    last = e; // not an address of this machine, or a disabled family: the other addresses may do
                }
            }
        }
        catch
        {
            foreach (var s in sockets) s.Dispose();
            throw;
        }
        if (sockets.Count == 0)
            throw new DistributedException(
                $"'{host}' ({string.Join(", ", addresses.Select(a => a.ToString()))}) is not an address of this machine, so {what} cannot " +
                $"listen there ({last?.SocketErrorCode}). Set MASTER_ADDR to an address of rank 0's host, or set " +
                $"{DistributedOptions.BindAllVariable}=1 to listen on all interfaces.", last);
        return sockets;
    }

    static Socket Bind(Func<AddressFamily, Socket> newSocket, IPAddress address, int port, int backlog, string what)
    {
        var s = newSocket(address.AddressFamily);
        try
        {
            if (address.Equals(IPAddress.IPv6Any)) s.DualMode = true;
            s.Bind(new IPEndPoint(address, port));
            s.Listen(backlog);
            return s;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            s.Dispose();
            throw new DistributedException(
                $"{what} cannot listen on port {port}: it is already in use on this host. " +
                "Pick another port, or leave MASTER_PORT unset and let the launcher choose a free one.", e);
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Fails when rank 0 of a job spanning several nodes would listen on loopback only: MASTER_ADDR names this
    /// machine but resolves to 127.x or ::1 here (Debian's "127.0.1.1 hostname" line), so other nodes could never connect.
    /// </summary>
    /// <exception cref="DistributedException">Every address of <paramref name="masterAddr"/> is a loopback address.</exception>
    public static void RequireReachableFromOtherNodes(string masterAddr, bool allInterfaces)
    {
        if (allInterfaces) return;
        var addresses = Resolve(masterAddr);
        if (addresses.All(IPAddress.IsLoopback))
            throw new DistributedException(
                $"MASTER_ADDR '{masterAddr}' is {string.Join(", ", addresses.Select(a => a.ToString()))} on rank 0's machine, a loopback address " +
                "the other nodes cannot reach. Set MASTER_ADDR to rank 0's network address (hostname -I lists them), or set " +
                $"{DistributedOptions.BindAllVariable}=1 to listen on all interfaces.");
    }

    /// <summary>The addresses of <paramref name="host"/> (an IP literal or a name), IPv4 first.</summary>
    public static IPAddress[] Resolve(string host)
    {
        if (IPAddress.TryParse(host, out var literal)) return [literal];
        try
        {
            var all = Dns.GetHostAddresses(host);
            if (all.Length == 0) throw new DistributedException($"'{host}' does not resolve to an address");
            return all.Distinct().OrderBy(a => a.AddressFamily == AddressFamily.InterNetwork ? 0 : 1).ToArray();
        }
        catch (SocketException e)
        {
            throw new DistributedException($"'{host}' does not resolve to an address: {e.Message}", e);
        }
    }

    /// <summary>Connects to the first address of <paramref name="addresses"/> that answers, with a socket of its own family.</summary>
    public static Socket Connect(IReadOnlyList<IPAddress> addresses, int port, CancellationToken cancel)
    {
        SocketException? last = null;
        foreach (var address in addresses)
        {
            Socket s;
            try { s = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp); }
            catch (SocketException e) { last = e; continue; } // that family is disabled here
            try
            {
                s.ConnectAsync(new IPEndPoint(address, port), cancel).AsTask().GetAwaiter().GetResult();
                return s;
            }
            catch (SocketException e)
            {
                s.Dispose();
                last = e;
            }
            catch
            {
                s.Dispose();
                throw;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }
    /// <summary>Fills <paramref name="buffer"/>; a closed connection or timeout is a <see cref="DistributedException"/>.</summary>
    public static void ReceiveExactly(Socket socket, Span<byte> buffer, string peer)
    {
        if (buffer.IsEmpty) return;
        if (!TryReceiveExactly(socket, buffer, peer))
            throw new DistributedException($"{peer} closed the connection (did that process exit or crash?)");
    }

    /// <summary>Fills <paramref name="buffer"/>; false when the peer closed the connection before sending anything.</summary>
    public static bool TryReceiveExactly(Socket socket, Span<byte> buffer, string peer = "the peer")
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n;
            try { n = socket.Receive(buffer[done..], SocketFlags.None); }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw new DistributedException($"timed out waiting for data from {peer}", e);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                throw new DistributedException($"{peer} reset the connection (did that process exit or crash?)", e);
            }
            if (n == 0)
            {
                if (done == 0) return false;
                throw new DistributedException($"{peer} closed the connection in the middle of a message (did that process exit or crash?)");
            }
            done += n;
        }
        return true;
    }

    /// <summary>Sends all of <paramref name="buffer"/>.</summary>
    public static void SendAll(Socket socket, ReadOnlySpan<byte> buffer, string peer)
    {
        try
        {
            while (!buffer.IsEmpty) buffer = buffer[socket.Send(buffer, SocketFlags.None)..];
        }
        catch (SocketException e)
        {
            throw new DistributedException($"could not send to {peer}: {e.SocketErrorCode} (did that process exit or crash?)", e);
        }
    }

    /// <summary>Sends <paramref name="length"/> bytes at <paramref name="data"/>, in pieces under 2 GB.</summary>
    public static unsafe void SendAll(Socket socket, byte* data, long length, string peer)
    {
        while (length > 0)
        {
            int n = (int)Math.Min(length, 1 << 30);
            SendAll(socket, new ReadOnlySpan<byte>(data, n), peer);
            data += n;
            length -= n;
        }
    }

    /// <summary>Receives <paramref name="length"/> bytes into <paramref name="data"/>, in pieces under 2 GB.</summary>
    public static unsafe void ReceiveExactly(Socket socket, byte* data, long length, string peer)
    {
        while (length > 0)
        {
            int n = (int)Math.Min(length, 1 << 30);
            ReceiveExactly(socket, new Span<byte>(data, n), peer);
            data += n;
            length -= n;
        }
    }
}
