using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace VectorLm.Tokenization;

/// <summary>
/// A SentencePiece-style ("llama" / SPM) vocabulary shared by the trainer and the llama.cpp engine, so both turn text
/// into the same ids.
/// </summary>
/// <remarks>
/// <para>Encoding follows llama.cpp's SPM tokenizer (<c>llm_tokenizer_spm</c>) with
/// <c>tokenizer.ggml.add_space_prefix = false</c> and special tokens not parsed from text: every space becomes
/// U+2581 '▁'; the text is split into UTF-8 characters; repeatedly the adjacent pair whose concatenation is a
/// vocabulary piece with the highest score is merged (ties: the leftmost pair); finally every symbol that is not a
/// piece is emitted as its UTF-8 bytes, one <c>&lt;0xXX&gt;</c> token each. Invalid UTF-16 (a lone surrogate) is
/// encoded as U+FFFD, as <see cref="Encoding.UTF8"/> does when text is handed to native code.</para>
/// <para>Layout: id 0 <c>&lt;unk&gt;</c> (<see cref="TokenType.Unknown"/>), 1 <c>&lt;s&gt;</c> (BOS, control),
/// 2 <c>&lt;/s&gt;</c> (EOS, control), 3..258 the bytes <c>&lt;0x00&gt;</c>..<c>&lt;0xFF&gt;</c>
/// (<see cref="TokenType.Byte"/>), then learned pieces (<see cref="TokenType.Normal"/>) whose score is minus their
/// merge rank (earlier merges win).</para>
/// <para>Saved as JSON (see <see cref="Save"/>): <c>{"format":"vectorlm-tokenizer","version":1,"model":"llama",
/// "add_space_prefix":false,"unk_id":0,"bos_id":1,"eos_id":2,"pieces":[...],"scores":[...],"types":[...]}</c>,
/// three parallel arrays indexed by id.</para>
/// </remarks>
public sealed class Tokenizer
{
    /// <summary>The escaped form of a space, U+2581 LOWER ONE EIGHTH BLOCK.</summary>
    public const char SpaceMarker = '\u2581';

    /// <summary>Ids of the first 259 entries, fixed by the layout.</summary>
    const int FirstByteId = 3, ByteCount = 256, BaseVocabSize = FirstByteId + ByteCount;

    readonly string[] _pieces;
    readonly float[] _scores;
    readonly TokenType[] _types;
    readonly Dictionary<string, int> _ids;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _idsBySpan;
    readonly int[] _byteIds = new int[ByteCount];
    readonly byte[]?[] _decoded; // UTF-8 bytes each id decodes to

    Tokenizer(string[] pieces, float[] scores, TokenType[] types)
    {
        if (pieces.Length != scores.Length || pieces.Length != types.Length)
            throw new InvalidDataException($"tokenizer arrays differ in length: pieces {pieces.Length}, scores {scores.Length}, types {types.Length}");
        if (pieces.Length < BaseVocabSize)
            throw new InvalidDataException($"tokenizer has {pieces.Length} pieces; at least {BaseVocabSize} (<unk>, <s>, </s> and 256 bytes) are required");
        CheckEntry(pieces, types, UnkId, "<unk>", TokenType.Unknown);
        CheckEntry(pieces, types, BosId, "<s>", TokenType.Control);
        CheckEntry(pieces, types, EosId, "</s>", TokenType.Control);
        for (int b = 0; b < ByteCount; b++) CheckEntry(pieces, types, FirstByteId + b, BytePiece((byte)b), TokenType.Byte);

        _pieces = pieces;
        _scores = scores;
        _types = types;
        _ids = new Dictionary<string, int>(pieces.Length, StringComparer.Ordinal);
        for (int i = 0; i < pieces.Length; i++)
        {
            if (string.IsNullOrEmpty(pieces[i])) throw new InvalidDataException($"tokenizer piece {i} is empty");
            if (!_ids.TryAdd(pieces[i], i))
                throw new InvalidDataException($"tokenizer piece '{pieces[i]}' appears twice (ids {_ids[pieces[i]]} and {i})");
        }
        _idsBySpan = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int b = 0; b < ByteCount; b++) _byteIds[b] = FirstByteId + b;
        _decoded = new byte[]?[pieces.Length];
        for (int i = 0; i < pieces.Length; i++)
            _decoded[i] = types[i] switch
            {
                TokenType.Byte => [(byte)(i - FirstByteId)],
                TokenType.Unknown or TokenType.Control or TokenType.Unused => [],
                _ => Encoding.UTF8.GetBytes(pieces[i]),
            };
    }

    static void CheckEntry(string[] pieces, TokenType[] types, int id, string piece, TokenType type)
    {
        if (pieces[id] != piece || types[id] != type)
            throw new InvalidDataException($"tokenizer entry {id} is '{pieces[id]}' of type {types[id]}; expected '{piece}' of type {type}");
    }

    /// <summary>Id of <c>&lt;unk&gt;</c>.</summary>
    public int UnkId => 0;
    /// <summary>Id of <c>&lt;s&gt;</c>, the beginning-of-sequence token.</summary>
    public int BosId => 1;
    /// <summary>Id of <c>&lt;/s&gt;</c>, the end-of-sequence token.</summary>
    public int EosId => 2;

    /// <summary>Number of entries; the model's <c>vocab_size</c> must be at least this.</summary>
    public int VocabSize => _pieces.Length;

    /// <summary>Piece text per id, spaces escaped as '▁' (GGUF <c>tokenizer.ggml.tokens</c>).</summary>
    public IReadOnlyList<string> Pieces => _pieces;
    /// <summary>Score per id (GGUF <c>tokenizer.ggml.scores</c>); higher merges first.</summary>
    public IReadOnlyList<float> Scores => _scores;
    /// <summary>Type per id (GGUF <c>tokenizer.ggml.token_type</c>).</summary>
    public IReadOnlyList<TokenType> Types => _types;

    /// <summary>Whether a space prefix is added before tokenizing: always false (GGUF <c>tokenizer.ggml.add_space_prefix</c>).</summary>
    public bool AddSpacePrefix => false;

    /// <summary>The embedded default: the 259-entry byte-level vocabulary, no merges.</summary>
    public static Tokenizer ByteLevel()
    {
        var (pieces, scores, types) = BaseEntries();
        return new Tokenizer(pieces.ToArray(), scores.ToArray(), types.ToArray());
    }

    /// <summary>
    /// A tokenizer over given entries (for example read from a GGUF file). The first 259 entries must be the fixed
    /// layout (<c>&lt;unk&gt;</c>, <c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>, the 256 byte tokens) and pieces must be unique.
    /// </summary>
    /// <exception cref="InvalidDataException">The entries break the layout; the message names the entry.</exception>
    public static Tokenizer FromVocabulary(IReadOnlyList<string> pieces, IReadOnlyList<float> scores, IReadOnlyList<TokenType> types) =>
        new(pieces.ToArray(), scores.ToArray(), types.ToArray());

    static (List<string>, List<float>, List<TokenType>) BaseEntries()
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        var types = new List<TokenType> { TokenType.Unknown, TokenType.Control, TokenType.Control };
        for (int b = 0; b < ByteCount; b++)
        {
            pieces.Add(BytePiece((byte)b));
            types.Add(TokenType.Byte);
        }
        return (pieces, Enumerable.Repeat(0f, pieces.Count).ToList(), types);
    }

    static string BytePiece(byte b) => string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>");

    /// <summary>
    /// Learns merges by byte-pair encoding over <paramref name="corpus"/> until the vocabulary has
    /// <paramref name="vocabSize"/> entries (or no pair occurs twice). Words are split before each space so pieces
    /// never span a word boundary other than a leading '▁'. Deterministic: ties go to the ordinally smaller piece.
    /// </summary>
    public static Tokenizer Train(IEnumerable<string> corpus, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        if (vocabSize < BaseVocabSize)
            throw new ArgumentOutOfRangeException(nameof(vocabSize), vocabSize, $"vocabulary size must be at least {BaseVocabSize}");
        var (pieces, scores, types) = BaseEntries();
        var known = new HashSet<string>(pieces, StringComparer.Ordinal);

        // Distinct words with counts; each word is a list of symbols, initially its characters.
        var wordCounts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string text in corpus)
        {
            string escaped = Escape(text);
            int start = 0;
            for (int i = 1; i <= escaped.Length; i++)
            {
                if (i < escaped.Length && escaped[i] != SpaceMarker) continue;
                string word = escaped[start..i];
                wordCounts[word] = wordCounts.GetValueOrDefault(word) + 1;
                start = i;
            }
        }
        var words = wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal)
            .Select(w => (Symbols: SplitCharacters(w.Key), Count: w.Value)).ToList();

        var banned = new HashSet<string>(StringComparer.Ordinal);
        while (pieces.Count < vocabSize)
        {
            var pairCounts = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var pair = (symbols[i], symbols[i + 1]);
                    pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + count;
                }
            (string, string)? best = null;
            int bestCount = 1;
            string bestText = "";
            foreach (var (pair, count) in pairCounts)
            {
                string merged = pair.Item1 + pair.Item2;
                if (banned.Contains(merged) || IsSpecialAffix(merged, pieces)) continue;
                if (count > bestCount || (count == bestCount && best is not null && string.CompareOrdinal(merged, bestText) < 0))
                    (best, bestCount, bestText) = (pair, count, merged);
            }
            if (best is null) break;
            if (known.Add(bestText))
            {
                pieces.Add(bestText);
                scores.Add(-(pieces.Count - BaseVocabSize));
                types.Add(TokenType.Normal);
            }
            else
            {
                banned.Add(bestText); // already a special or byte piece: never learn it twice
                continue;
            }
            var (left, right) = best.Value;
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = bestText;
                        symbols.RemoveAt(i + 1);
                    }
        }
        return new Tokenizer(pieces.ToArray(), scores.ToArray(), types.ToArray());
    }

    // The encoder merges into any vocabulary text, special and byte tokens included (as llama.cpp does). A learned
    // piece that starts a special text with '<' or ends one with '>' could complete such a merge ("<0x4" + "1>" is
    // the byte token "<0x41>"), so training never learns one.
    static bool IsSpecialAffix(string piece, List<string> basePieces)
    {
        if (piece[0] != '<' && piece[^1] != '>') return false;
        for (int i = 0; i < BaseVocabSize; i++)
        {
            string t = basePieces[i];
            if (t.Length > piece.Length &&
                ((piece[0] == '<' && t.StartsWith(piece, StringComparison.Ordinal)) ||
                 (piece[^1] == '>' && t.EndsWith(piece, StringComparison.Ordinal))))
                return true;
        }
        return false;
    }

    static List<string> SplitCharacters(string s)
    {
        var list = new List<string>();
        for (int i = 0; i < s.Length;)
        {
            int n = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
            list.Add(s.Substring(i, n));
            i += n;
        }
        return list;
    }

    // Spaces to '▁'; lone surrogates to U+FFFD (what UTF-8 encoding of the text would give).
    static string Escape(string text)
    {
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c == ' ') sb.Append(SpaceMarker);
            else if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) sb.Append(c).Append(text[++i]);
            else if (char.IsSurrogate(c)) sb.Append('\uFFFD');
            else sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>
    /// Turns <paramref name="text"/> into ids exactly as llama.cpp's <c>llama_tokenize</c> does for this vocabulary
    /// (with <c>parse_special = false</c>: text such as "&lt;s&gt;" is ordinary text).
    /// </summary>
    /// <param name="text">Any string.</param>
    /// <param name="addBos">Prepend <see cref="BosId"/>.</param>
    /// <param name="addEos">Append <see cref="EosId"/>.</param>
    public int[] Encode(string text, bool addBos = false, bool addEos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length + 2);
        if (addBos) output.Add(BosId);
        EncodeInto(Escape(text), output);
        if (addEos) output.Add(EosId);
        return output.ToArray();
    }

    struct Symbol
    {
        public int Start, Length, Prev, Next;
    }

    readonly record struct Bigram(int Left, int Right, float Score, int Length);

    sealed class BigramOrder : IComparer<Bigram>
    {
        public static readonly BigramOrder Instance = new();
        // PriorityQueue dequeues the smallest: highest score first, then the leftmost.
        public int Compare(Bigram a, Bigram b) => a.Score != b.Score ? b.Score.CompareTo(a.Score) : a.Left.CompareTo(b.Left);
    }

    void EncodeInto(string s, List<int> output)
    {
        if (s.Length == 0) return;
        var symbols = new List<Symbol>(s.Length);
        for (int i = 0; i < s.Length;)
        {
            int n = char.IsHighSurrogate(s[i]) && i + 1 < s.Length ? 2 : 1;
            symbols.Add(new Symbol { Start = i, Length = n, Prev = symbols.Count - 1, Next = i + n == s.Length ? -1 : symbols.Count + 1 });
            i += n;
        }
        var span = symbols.ToArray();
        var queue = new PriorityQueue<Bigram, Bigram>(BigramOrder.Instance);

        void TryAdd(int left, int right)
        {
            if (left < 0 || right < 0) return;
            int length = span[left].Length + span[right].Length;
            if (_idsBySpan.TryGetValue(s.AsSpan(span[left].Start, length), out int id))
            {
                var b = new Bigram(left, right, _scores[id], length);
                queue.Enqueue(b, b);
            }
        }

        for (int i = 1; i < span.Length; i++) TryAdd(i - 1, i);
        while (queue.TryDequeue(out var bigram, out _))
        {
            ref var left = ref span[bigram.Left];
            ref var right = ref span[bigram.Right];
            // Stale: one side was merged away or grew since this pair was queued.
            if (left.Length == 0 || right.Length == 0 || left.Length + right.Length != bigram.Length) continue;
            left.Length += right.Length;
            right.Length = 0;
            left.Next = right.Next;
            if (right.Next >= 0) span[right.Next].Prev = bigram.Left;
            TryAdd(left.Prev, bigram.Left);
            TryAdd(bigram.Left, left.Next);
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i != -1; i = span[i].Next)
        {
            var piece = s.AsSpan(span[i].Start, span[i].Length);
            if (_idsBySpan.TryGetValue(piece, out int id))
            {
                output.Add(id);
                continue;
            }
            // Not a piece: always a single character (merges only ever form pieces), so it fits in 4 bytes.
            int n = Encoding.UTF8.GetBytes(piece, utf8);
            for (int j = 0; j < n; j++) output.Add(_byteIds[utf8[j]]);
        }
    }

    /// <summary>
    /// Turns ids back into text: the UTF-8 of pieces and byte tokens concatenated, decoded with U+FFFD for invalid
    /// sequences, then every '▁' turned back into a space. Control and unknown tokens decode to nothing, as in
    /// llama.cpp's <c>llama_detokenize</c> without special tokens.
    /// </summary>
    /// <remarks>
    /// llama.cpp un-escapes '▁' per normal piece but copies byte tokens raw, so where a space fell back to bytes
    /// (always, in the byte-level vocabulary) its raw pieces show '▁'; decoding the ids here gives the spaces back.
    /// A literal '▁' in the input comes back as a space (as with any SentencePiece vocabulary).
    /// </remarks>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        foreach (int id in ids) bytes.AddRange(PieceBytes(id));
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace(SpaceMarker, ' ');
    }

    /// <summary>
    /// The raw UTF-8 bytes of <paramref name="id"/> with '▁' still escaped: the piece text for normal tokens, one
    /// byte for byte tokens, nothing for control and unknown tokens.
    /// </summary>
    public ReadOnlySpan<byte> PieceBytes(int id)
    {
        if ((uint)id >= (uint)_pieces.Length)
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary of {_pieces.Length}");
        return _decoded[id];
    }

    /// <summary>The id of an exact piece (spaces escaped as '▁'), or null.</summary>
    public int? PieceToId(string piece) => _ids.TryGetValue(piece, out int id) ? id : null;

    sealed class FileModel
    {
        [JsonPropertyName("format")] public string? Format { get; set; }
        [JsonPropertyName("version")] public int Version { get; set; }
        [JsonPropertyName("model")] public string? Model { get; set; }
        [JsonPropertyName("add_space_prefix")] public bool AddSpacePrefix { get; set; }
        [JsonPropertyName("unk_id")] public int UnkId { get; set; }
        [JsonPropertyName("bos_id")] public int BosId { get; set; }
        [JsonPropertyName("eos_id")] public int EosId { get; set; }
        [JsonPropertyName("pieces")] public string[]? Pieces { get; set; }
        [JsonPropertyName("scores")] public float[]? Scores { get; set; }
        [JsonPropertyName("types")] public int[]? Types { get; set; }
    }

    const string FormatName = "vectorlm-tokenizer";

    /// <summary>Writes the vocabulary as JSON to <paramref name="path"/> (atomically: temporary file, then rename).</summary>
    public void Save(string path)
    {
        var model = new FileModel
        {
            Format = FormatName, Version = 1, Model = "llama", AddSpacePrefix = false,
            UnkId = UnkId, BosId = BosId, EosId = EosId,
            Pieces = _pieces, Scores = _scores, Types = _types.Select(t => (int)t).ToArray(),
        };
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(model));
        File.Move(tmp, full, overwrite: true);
    }

    /// <summary>Reads a vocabulary written by <see cref="Save"/>.</summary>
    public static Tokenizer Load(string path)
    {
        FileModel? model;
        try
        {
            model = JsonSerializer.Deserialize<FileModel>(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a tokenizer file: {e.Message}", e);
        }
        if (model is null || model.Format != FormatName)
            throw new InvalidDataException($"{path}: \"format\" must be \"{FormatName}\"");
        if (model.Version != 1) throw new InvalidDataException($"{path}: unsupported tokenizer version {model.Version}");
        if (model.Model != "llama" || model.AddSpacePrefix || model.UnkId != 0 || model.BosId != 1 || model.EosId != 2)
            throw new InvalidDataException($"{path}: only model \"llama\" without space prefix and ids unk 0, bos 1, eos 2 is supported");
        if (model.Pieces is null || model.Scores is null || model.Types is null)
            throw new InvalidDataException($"{path}: \"pieces\", \"scores\" and \"types\" are required");
        var types = model.Types.Select(t => Enum.IsDefined((TokenType)t) ? (TokenType)t
            : throw new InvalidDataException($"{path}: unknown token type {t}")).ToArray();
        try
        {
            return new Tokenizer(model.Pieces, model.Scores, types);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }
}
