using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace VectorLm.Distributed;

/// <summary>
/// Who may talk to the rendezvous store and to the ranks' listeners: every connection opens with a short hello
/// (a magic word naming the protocol, then the job token) and is closed, with a log line, when the hello is wrong.
/// This keeps port scanners, HTTP probes and other jobs out; it is not encryption (the token travels in clear text).
/// </summary>
/// <param name="Token">The job token (<c>VECTORLM_JOB_TOKEN</c>); null or empty: any hello with an empty token is admitted.</param>
/// <param name="BindAllInterfaces">Listen on all interfaces rather than MASTER_ADDR's (rank 0) or the advertised address (the others).</param>
/// <param name="Log">Where rejected connections are reported; null: standard error.</param>
internal sealed record JobSecurity(string? Token, bool BindAllInterfaces = false, Action<string>? Log = null)
{
    /// <summary>No token, listening on MASTER_ADDR's interface only.</summary>
    public static readonly JobSecurity Default = new((string?)null);

    /// <summary>The longest token accepted; a longer hello is malformed.</summary>
    public const int MaxTokenBytes = 1024;

    /// <summary>How long a new connection has to send its hello before it is dropped.</summary>
    public static TimeSpan HelloTimeout { get; } = TimeSpan.FromSeconds(10);

    /// <summary>Protocol words: the store's clients, and rank-to-rank connections.</summary>
    public static ReadOnlySpan<byte> StoreMagic => "VLS1"u8;
    public static ReadOnlySpan<byte> PeerMagic => "VLP1"u8;

    const byte Accepted = 1, Rejected = 0;

    byte[] TokenBytes => Encoding.UTF8.GetBytes(Token ?? "");

    public bool IsAuthenticated => !string.IsNullOrEmpty(Token);

    /// <summary>Client side: sends the hello and waits for the verdict.</summary>
    /// <exception cref="DistributedException">The other side rejected the token or closed the connection.</exception>
    public void Introduce(Socket socket, ReadOnlySpan<byte> magic, string peer, TimeSpan? wait = null)
    {
        var token = TokenBytes;
        var hello = new byte[magic.Length + 2 + token.Length];
        magic.CopyTo(hello);
        BinaryPrimitives.WriteUInt16LittleEndian(hello.AsSpan(magic.Length), (ushort)token.Length);
        token.CopyTo(hello, magic.Length + 2);
        SocketIO.SendAll(socket, hello, peer);
        Span<byte> verdict = stackalloc byte[1];
        int oldTimeout = socket.ReceiveTimeout;
        socket.ReceiveTimeout = (int)Math.Min(int.MaxValue, (wait ?? HelloTimeout * 3).TotalMilliseconds);
        try
        {
            if (!SocketIO.TryReceiveExactly(socket, verdict, peer) || verdict[0] != Accepted)
                throw new DistributedException(
                    $"{peer} rejected this process's job token: every rank of a job needs the same {DistributedOptions.JobTokenVariable} " +
                    "(the VectorLm launcher sets it; under torchrun or Slurm export it before starting the ranks)");
        }
        finally { socket.ReceiveTimeout = oldTimeout; }
    }

    /// <summary>
    /// Server side: reads and checks the hello of a connection just accepted. Returns null when admitted, else why
    /// not (the caller closes the connection and logs it). Never throws for what the peer sends.
    /// </summary>
    public string? Admit(Socket socket, ReadOnlySpan<byte> magic)
    {
        int oldTimeout = socket.ReceiveTimeout;
        socket.ReceiveTimeout = (int)HelloTimeout.TotalMilliseconds;
        try
        {
            // The magic word first, alone: a stranger that sends a few bytes is turned away at once.
            Span<byte> head = stackalloc byte[magic.Length];
            if (!SocketIO.TryReceiveExactly(socket, head, "a new connection")) return "closed before its hello";
            if (!head.SequenceEqual(magic))
                return $"not a VectorLm {(magic.SequenceEqual(StoreMagic) ? "store client" : "rank")} (first bytes {Printable(head)})";
            Span<byte> tokenLength = stackalloc byte[2];
            SocketIO.ReceiveExactly(socket, tokenLength, "a new connection");
            int length = BinaryPrimitives.ReadUInt16LittleEndian(tokenLength);
            if (length > MaxTokenBytes) return $"a job token of {length} bytes (at most {MaxTokenBytes})";
            var token = new byte[length];
            SocketIO.ReceiveExactly(socket, token, "a new connection");
            bool ok = CryptographicOperations.FixedTimeEquals(token, TokenBytes);
            socket.Send([ok ? Accepted : Rejected]);
            return ok ? null : "a wrong job token";
        }
        catch (Exception e) when (e is DistributedException or SocketException or ObjectDisposedException)
        {
            return e.Message;
        }
        finally
        {
            try { socket.ReceiveTimeout = oldTimeout; } catch (ObjectDisposedException) { }
        }
    }

    static string Printable(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder("'");
        foreach (var b in bytes) sb.Append(b is >= 32 and < 127 ? (char)b : '.');
        return sb.Append('\'').ToString();
    }

    /// <summary>A log that says the first few things, then only every hundredth, so a flood cannot fill the disk.</summary>
    internal sealed class ThrottledLog(Action<string> write)
    {
        long _count;

        public void Write(string message)
        {
            long n = Interlocked.Increment(ref _count);
            if (n <= 10) write(message);
            else if (n % 100 == 0) write($"{message} ({n} such messages so far; only every 100th is shown)");
        }
    }

    internal Action<string> LogOrStderr => Log ?? (m => Console.Error.WriteLine(m));

    /// <summary>"host:port" of a socket's peer, or "?" once it is gone.</summary>
    internal static string RemoteName(Socket s)
    {
        try { return s.RemoteEndPoint is IPEndPoint ep ? ep.ToString() : "?"; }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { return "?"; }
    }
}
