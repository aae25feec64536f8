using System.Globalization;
using System.Text;

namespace VectorLm.Distributed;

/// <summary>The collectives a process group runs; part of every fingerprint.</summary>
internal enum CollectiveKind : byte
{
    /// <summary><see cref="TrainerContext.Barrier"/>.</summary>
    Barrier,
    /// <summary>Tensor all-reduce.</summary>
    AllReduce,
    /// <summary>Tensor broadcast.</summary>
    Broadcast,
    /// <summary>Tensor all-gather.</summary>
    AllGather,
    /// <summary>Broadcast of a serialised value.</summary>
    BroadcastObject,
    /// <summary>All-gather of serialised values.</summary>
    AllGatherObject,
}

/// <summary>Where a collective was called from, filled by the compiler's caller-info attributes.</summary>
internal readonly record struct CallSite(string Member, string File, int Line)
{
    /// <summary>"File.cs:42 (Member)".</summary>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Path.GetFileName(File)}:{Line} ({Member})");
}

/// <summary>
/// What one rank is about to do in one collective. Ranks exchange fingerprints before the data moves, so a rank in
/// <c>Barrier</c> while another is in <c>AllReduce</c> is an error that names both, never a hang.
/// </summary>
/// <param name="Sequence">How many collectives this rank ran before this one in the group.</param>
/// <param name="Kind">Which collective.</param>
/// <param name="Op">The reduction for all-reduce, else null.</param>
/// <param name="Root">The source rank for broadcasts, else -1.</param>
/// <param name="DType">The tensor's element type ("float32"), or "" for tensorless collectives.</param>
/// <param name="Shape">The tensor's shape, or empty.</param>
/// <param name="Site">The caller.</param>
internal sealed record Fingerprint(long Sequence, CollectiveKind Kind, ReduceOp? Op, int Root, string DType, long[] Shape, CallSite Site)
{
    /// <summary>"AllReduce(Sum) float32[4, 5] at Train.cs:42 (Train)".</summary>
    public string Describe()
    {
        var sb = new StringBuilder().Append(Kind);
        if (Op is { } op) sb.Append('(').Append(op).Append(')');
        if (Root >= 0) sb.Append("(root ").Append(Root.ToString(CultureInfo.InvariantCulture)).Append(')');
        if (DType.Length > 0) sb.Append(' ').Append(DType).Append('[').AppendJoin(", ", Shape).Append(']');
        return sb.Append(" at ").Append(Site).ToString();
    }

    /// <summary>What must agree across ranks: everything but the call site (see <see cref="FindMismatch"/>).</summary>
    bool Matches(Fingerprint other) =>
        Sequence == other.Sequence && Kind == other.Kind && Op == other.Op && Root == other.Root &&
        DType == other.DType && Shape.AsSpan().SequenceEqual(other.Shape);

    /// <summary>
    /// Null when all ranks agree, else a message naming each rank's call. Call sites are reported but not compared:
    /// <c>if (IsMainRank) Broadcast(v) else Broadcast(default)</c> calls the same collective from two lines, legally.
    /// </summary>
    public static string? FindMismatch(IReadOnlyList<Fingerprint> byRank)
    {
        var first = byRank[0];
        if (byRank.All(first.Matches)) return null;
        bool sameKind = byRank.All(f => f.Kind == first.Kind && f.Sequence == first.Sequence && f.Op == first.Op && f.Root == first.Root);
        var sb = new StringBuilder();
        if (sameKind && first.Kind != CollectiveKind.AllGatherObject)
            sb.Append(CultureInfo.InvariantCulture, $"{first.Kind}: the tensors differ across ranks (every rank must pass the same shape and dtype):");
        else
            sb.Append(CultureInfo.InvariantCulture, $"collective desync at collective #{first.Sequence}: the ranks called different collectives:");
        for (int r = 0; r < byRank.Count; r++)
            sb.Append(CultureInfo.InvariantCulture, $"\n  rank {r}: #{byRank[r].Sequence} {byRank[r].Describe()}");
        return sb.ToString();
    }

    internal void Write(Stream w)
    {
        TcpStore.WriteInt64(w, Sequence);
        w.WriteByte((byte)Kind);
        w.WriteByte(Op is { } op ? (byte)(op + 1) : (byte)0);
        TcpStore.WriteInt64(w, Root);
        TcpStore.WriteString(w, DType);
        TcpStore.WriteInt64(w, Shape.Length);
        foreach (var d in Shape) TcpStore.WriteInt64(w, d);
        TcpStore.WriteString(w, Site.Member);
        TcpStore.WriteString(w, Site.File);
        TcpStore.WriteInt64(w, Site.Line);
    }

    internal static Fingerprint Read(Stream r)
    {
        long seq = TcpStore.ReadInt64(r);
        var kind = (CollectiveKind)r.ReadByte();
        int op = r.ReadByte();
        int root = (int)TcpStore.ReadInt64(r);
        string dtype = TcpStore.ReadString(r);
        var shape = new long[TcpStore.ReadInt64(r)];
        for (int i = 0; i < shape.Length; i++) shape[i] = TcpStore.ReadInt64(r);
        var site = new CallSite(TcpStore.ReadString(r), TcpStore.ReadString(r), (int)TcpStore.ReadInt64(r));
        return new Fingerprint(seq, kind, op == 0 ? null : (ReduceOp)(op - 1), root, dtype, shape, site);
    }
}
