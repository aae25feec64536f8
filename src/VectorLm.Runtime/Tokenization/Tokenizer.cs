using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace VectorLm.Tokenization;

/// <summary>
/// The tokenizer shared by the trainer and the sampling engines, so both turn text into the same ids: either the SDK's
/// own SentencePiece-style ("llama" / SPM) vocabulary, or a Hugging Face tokenizer read by <see cref="FromPretrained"/>.
/// </summary>
/// <remarks>
/// <para>A Hugging Face tokenizer (<c>tokenizer.json</c>) encodes and decodes exactly as the <c>tokenizers</c> library:
/// byte-level BPE (GPT-2, Llama 3, Qwen2 pre-tokenizers) or SentencePiece-style BPE with byte fallback (Llama 2,
/// TinyLlama, Mistral); added tokens are matched atomically in text. The rest of these remarks is about the own
/// vocabulary.</para>
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
    readonly HfTokenizer? _hf;
    readonly int _unkId = 0, _bosId = 1, _eosId = 2;

    Tokenizer(HfTokenizer hf)
    {
        _hf = hf;
        var (tokens, types) = hf.Entries();
        _pieces = tokens;
        _scores = new float[tokens.Length];
        _types = types;
        _ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++) _ids.TryAdd(tokens[i], i);
        _idsBySpan = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        _decoded = tokens.Select(t => Encoding.UTF8.GetBytes(t)).ToArray();
        (_unkId, _bosId, _eosId) = (hf.UnkId, hf.BosId, hf.EosId);
    }

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

    /// <summary>Id of the unknown token (<c>&lt;unk&gt;</c>); -1 when the tokenizer has none (byte-level BPE).</summary>
    public int UnkId => _unkId;
    /// <summary>Id of the beginning-of-sequence token (<c>&lt;s&gt;</c>); -1 when the tokenizer has none (Qwen2).</summary>
    public int BosId => _bosId;
    /// <summary>Id of the end-of-sequence token (<c>&lt;/s&gt;</c>); -1 when the tokenizer config names none.</summary>
    public int EosId => _eosId;
    /// <summary>Id of the padding token; -1 when none is named.</summary>
    public int PadId => _hf?.PadId ?? -1;
    /// <summary>
    /// Whether prompts start with <see cref="BosId"/>: always for the own vocabulary; for a Hugging Face tokenizer
    /// <c>add_bos_token</c> of <c>tokenizer_config.json</c>, else whether its post-processor template starts with BOS.
    /// </summary>
    public bool AddBosToken => _hf?.AddBos ?? true;
    /// <summary>Whether a Hugging Face tokenizer's config appends EOS to encoded text (<c>add_eos_token</c>); false for the own vocabulary.</summary>
    public bool AddEosToken => _hf?.AddEos ?? false;
    /// <summary>The folder a Hugging Face tokenizer was read from; null for the own vocabulary.</summary>
    public string? PretrainedFolder => _hf?.Folder;

    /// <summary>Number of entries; the model's <c>vocab_size</c> must be at least this.</summary>
    public int VocabSize => _pieces.Length;

    /// <summary>
    /// Piece text per id (GGUF <c>tokenizer.ggml.tokens</c>): spaces escaped as '▁' in the own vocabulary and in
    /// SentencePiece-style Hugging Face tokenizers, bytes mapped to GPT-2's characters ('Ġ' for a space) in byte-level ones.
    /// </summary>
    public IReadOnlyList<string> Pieces => _pieces;
    /// <summary>Score per id (GGUF <c>tokenizer.ggml.scores</c>); higher merges first. All 0 for a Hugging Face tokenizer, which merges by rank.</summary>
    public IReadOnlyList<float> Scores => _scores;
    /// <summary>Type per id (GGUF <c>tokenizer.ggml.token_type</c>).</summary>
    public IReadOnlyList<TokenType> Types => _types;

    /// <summary>Whether the own vocabulary adds a space prefix before tokenizing: always false (GGUF <c>tokenizer.ggml.add_space_prefix</c>).</summary>
    public bool AddSpacePrefix => false;

    /// <summary>
    /// Reads a Hugging Face tokenizer folder: <c>tokenizer.json</c> (BPE model; normalizers Sequence, Prepend,
    /// Replace, NFC/NFKC/NFD/NFKD, Lowercase; pre-tokenizers Sequence, Split, ByteLevel, Metaspace; decoders ByteLevel,
    /// Replace, ByteFallback, Fuse, Strip, Metaspace) plus, where present, <c>tokenizer_config.json</c> and
    /// <c>special_tokens_map.json</c> for BOS/EOS/PAD and <c>add_bos_token</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder has no <c>tokenizer.json</c>.</exception>
    /// <exception cref="InvalidDataException">A part this tokenizer does not implement, or a bad value; the message names the file and field.</exception>
    public static Tokenizer FromPretrained(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such folder");
        return new Tokenizer(HfTokenizer.Load(folder));
    }

    /// <summary>
    /// The vocabulary as llama.cpp reads it from GGUF metadata: the own vocabulary and SentencePiece-style Hugging Face
    /// tokenizers as "llama", byte-level ones as "gpt2" with their merges and llama.cpp's pre-tokenizer name.
    /// </summary>
    /// <exception cref="NotSupportedException">llama.cpp has no tokenizer that encodes like this one (the message says why and names the torch engine).</exception>
    public GgufVocabulary ToGgufVocabulary() => _hf?.ToGguf()
        ?? new GgufVocabulary("llama", null, _pieces, _scores, _types.Select(t => (int)t).ToArray(), null, BosId, EosId, UnkId, -1,
            AddBos: true, AddSpacePrefix: false);

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
    /// <remarks>A Hugging Face tokenizer encodes as <c>tokenizers</c>' <c>encode(text, add_special_tokens=False)</c>:
    /// added tokens written in the text (such as "&lt;|eot_id|&gt;") are matched as those tokens.</remarks>
    /// <exception cref="InvalidOperationException">BOS or EOS asked for and the tokenizer has none.</exception>
    public int[] Encode(string text, bool addBos = false, bool addEos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length + 2);
        if (addBos) output.Add(BosId >= 0 ? BosId : throw new InvalidOperationException("This tokenizer has no BOS token (tokenizer_config.json names none)."));
        if (_hf is not null) _hf.Encode(text, output);
        else EncodeInto(Escape(text), output);
        if (addEos) output.Add(EosId >= 0 ? EosId : throw new InvalidOperationException("This tokenizer has no EOS token (tokenizer_config.json names none)."));
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
    /// <remarks>A Hugging Face tokenizer decodes as <c>tokenizers</c>' <c>decode(ids, skip_special_tokens=True)</c>
    /// (ids outside its vocabulary, such as a model's padding rows, are skipped there too).</remarks>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (_hf is not null) return _hf.Decode(ids, skipSpecialTokens: true);
        var bytes = new List<byte>();
        foreach (int id in ids) bytes.AddRange(PieceBytes(id));
        return Encoding.UTF8.GetString(bytes.ToArray()).Replace(SpaceMarker, ' ');
    }

    /// <summary>
    /// The raw UTF-8 bytes of <paramref name="id"/> with '▁' still escaped: the piece text for normal tokens, one
    /// byte for byte tokens, nothing for control and unknown tokens. For a Hugging Face tokenizer: the UTF-8 of the
    /// token text as it stands in tokenizer.json.
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

    /// <summary>
    /// Text of <paramref name="ids"/> as <c>tokenizers</c>' <c>decode(ids, skip_special_tokens)</c>; for the own
    /// vocabulary the same as <see cref="Decode(IEnumerable{int})"/> whatever <paramref name="skipSpecialTokens"/> says.
    /// </summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return _hf is not null ? _hf.Decode(ids, skipSpecialTokens) : Decode(ids);
    }

    /// <summary>Writes the vocabulary as JSON to <paramref name="path"/> (atomically: temporary file, then rename).</summary>
    /// <exception cref="InvalidOperationException">A Hugging Face tokenizer: use <see cref="SavePretrained"/>.</exception>
    public void Save(string path)
    {
        if (_hf is not null)
            throw new InvalidOperationException("A Hugging Face tokenizer is saved as its files: call SavePretrained(folder).");
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

    /// <summary>
    /// Copies a Hugging Face tokenizer's files (<c>tokenizer.json</c>, and <c>tokenizer_config.json</c> and
    /// <c>special_tokens_map.json</c> where present) into <paramref name="folder"/>, next to a saved checkpoint.
    /// </summary>
    /// <exception cref="InvalidOperationException">The own vocabulary: use <see cref="Save"/>.</exception>
    public void SavePretrained(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (_hf is null) throw new InvalidOperationException("The own vocabulary is saved with Save(path).");
        Directory.CreateDirectory(folder);
        foreach (string name in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
        {
            string source = Path.Combine(_hf.Folder, name), target = Path.Combine(folder, name);
            if (!File.Exists(source) || Path.GetFullPath(source) == Path.GetFullPath(target)) continue;
            File.Copy(source, target + ".tmp", overwrite: true);
            File.Move(target + ".tmp", target, overwrite: true);
        }
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
