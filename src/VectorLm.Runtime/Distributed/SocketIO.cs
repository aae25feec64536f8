using System.Net.Sockets;

namespace VectorLm.Distributed;

/// <summary>Blocking whole-buffer socket reads and writes with errors that name the other side.</summary>
static class SocketIO
{
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
