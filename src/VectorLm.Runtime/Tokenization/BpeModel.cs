using System.Globalization;
using System.Text;

namespace VectorLm.Tokenization;

/// <summary>
/// The <c>BPE</c> model of a Hugging Face <c>tokenizer.json</c>: turns one pre-tokenized word into ids by applying the
/// ranked merges, as <c>tokenizers</c>' <c>Word::merge_all</c> does (lowest rank first, ties to the leftmost pair).
/// </summary>
internal sealed class BpeModel
{
    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    readonly Dictionary<(int Left, int Right), (int Rank, int Merged)> _merges;
    readonly int? _unkId;
    readonly bool _byteFallback, _fuseUnk, _ignoreMerges;
    readonly int[]? _byteIds;

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, string? unkToken,
        bool byteFallback, bool fuseUnk, bool ignoreMerges)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = new Dictionary<(int, int), (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            int l = Id(left, rank), r = Id(right, rank), m = Id(left + right, rank);
            _merges.TryAdd((l, r), (rank, m)); // a repeated merge keeps its first rank, as tokenizers does
        }
        if (unkToken is not null)
            _unkId = vocab.TryGetValue(unkToken, out int u) ? u
                : throw new InvalidDataException($"field \"model.unk_token\" \"{unkToken}\" is not in \"model.vocab\"");
        _byteFallback = byteFallback;
        _fuseUnk = fuseUnk;
        _ignoreMerges = ignoreMerges;
        if (byteFallback)
        {
            _byteIds = new int[256];
            for (int b = 0; b < 256; b++) _byteIds[b] = vocab.GetValueOrDefault(BytePiece((byte)b), -1);
        }
        MergeRanks = merges;
    }

    int Id(string piece, int rank) => _vocab.TryGetValue(piece, out int id) ? id
        : throw new InvalidDataException($"field \"model.merges\" entry {rank} uses \"{piece}\", which is not in \"model.vocab\"");

    /// <summary>The merges in rank order.</summary>
    public IReadOnlyList<(string Left, string Right)> MergeRanks { get; }

    /// <summary>Token text to id.</summary>
    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    /// <summary>Whether characters outside the vocabulary become <c>&lt;0xXX&gt;</c> tokens.</summary>
    public bool ByteFallback => _byteFallback;

    /// <summary>The unknown token's id, if the model has one.</summary>
    public int? UnkId => _unkId;

    /// <summary>The spelling of a byte token: <c>&lt;0x41&gt;</c>.</summary>
    public static string BytePiece(byte b) => string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>");

    struct Symbol
    {
        public int Id, Prev, Next, Length;
    }

    readonly record struct Candidate(int Rank, int Position, int Merged);

    sealed class CandidateOrder : IComparer<Candidate>
    {
        public static readonly CandidateOrder Instance = new();
        public int Compare(Candidate a, Candidate b) => a.Rank != b.Rank ? a.Rank.CompareTo(b.Rank) : a.Position.CompareTo(b.Position);
    }

    /// <summary>Appends the ids of <paramref name="word"/> to <paramref name="output"/>.</summary>
    public void Encode(string word, List<int> output)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocabBySpan.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }
        var symbols = new List<Symbol>(word.Length);
        void Add(int id, int length) => symbols.Add(new Symbol { Id = id, Length = length });
        (int Id, int Length)? pendingUnk = null;
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < word.Length;)
        {
            int n = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            var c = word.AsSpan(i, n);
            i += n;
            if (_vocabBySpan.TryGetValue(c, out int id))
            {
                if (pendingUnk is { } u) { Add(u.Id, u.Length); pendingUnk = null; }
                Add(id, n);
                continue;
            }
            if (_byteFallback)
            {
                int count = Encoding.UTF8.GetBytes(c, utf8);
                bool all = true;
                for (int b = 0; b < count; b++) all &= _byteIds![utf8[b]] >= 0;
                if (all)
                {
                    if (pendingUnk is { } u) { Add(u.Id, u.Length); pendingUnk = null; }
                    for (int b = 0; b < count; b++) Add(_byteIds![utf8[b]], 1);
                    continue;
                }
            }
            if (_unkId is { } unk)
            {
                if (pendingUnk is { } u && _fuseUnk) pendingUnk = (u.Id, u.Length + n);
                else
                {
                    if (pendingUnk is { } p) Add(p.Id, p.Length);
                    pendingUnk = (unk, n);
                }
            }
        }
        if (pendingUnk is { } last) Add(last.Id, last.Length);

        var span = symbols.ToArray();
        for (int i = 0; i < span.Length; i++)
        {
            span[i].Prev = i - 1;
            span[i].Next = i + 1 < span.Length ? i + 1 : -1;
        }
        var queue = new PriorityQueue<Candidate, Candidate>(CandidateOrder.Instance);
        void Consider(int left)
        {
            if (left < 0 || span[left].Next < 0) return;
            if (_merges.TryGetValue((span[left].Id, span[span[left].Next].Id), out var m))
            {
                var c = new Candidate(m.Rank, left, m.Merged);
                queue.Enqueue(c, c);
            }
        }
        for (int i = 0; i + 1 < span.Length; i++) Consider(i);
        while (queue.TryDequeue(out var top, out _))
        {
            ref var left = ref span[top.Position];
            if (left.Length == 0 || left.Next < 0) continue;
            ref var right = ref span[left.Next];
            // Stale: one side changed since this pair was queued.
            if (!_merges.TryGetValue((left.Id, right.Id), out var m) || m.Merged != top.Merged) continue;
            left.Id = top.Merged;
            left.Length += right.Length;
            right.Length = 0;
            int after = right.Next;
            left.Next = after;
            if (after >= 0) span[after].Prev = top.Position;
            Consider(left.Prev);
            Consider(top.Position);
        }
        for (int i = 0; i >= 0 && i < span.Length; i = span[i].Next) output.Add(span[i].Id);
    }
}
