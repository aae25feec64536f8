using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VectorLm.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> (BPE model) with the special tokens of <c>tokenizer_config.json</c> and
/// <c>special_tokens_map.json</c>: the pipeline of tokenizers' <c>encode(text, add_special_tokens=False)</c> and
/// <c>decode</c>, and its vocabulary in llama.cpp's terms.
/// </summary>
internal sealed class HfTokenizer
{
    /// <summary>Llama 3's pre-tokenizer regex (llama.cpp "llama-bpe").</summary>
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    /// <summary>Qwen2's pre-tokenizer regex (llama.cpp "qwen2").</summary>
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    readonly HfNormalizer? _normalizer;
    readonly HfPreTokenizer? _preTokenizer;
    readonly HfDecoder? _decoder;
    readonly BpeModel _model;
    readonly AddedVocabulary _added;
    readonly string?[] _tokens;

    HfTokenizer(string folder, HfNormalizer? normalizer, HfPreTokenizer? preTokenizer, HfDecoder? decoder, BpeModel model,
        AddedVocabulary added)
    {
        Folder = folder;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _decoder = decoder;
        _model = model;
        _added = added;
        int size = Math.Max(model.Vocab.Count == 0 ? 0 : model.Vocab.Values.Max() + 1, added.Tokens.Count == 0 ? 0 : added.Tokens.Max(t => t.Id) + 1);
        _tokens = new string?[size];
        foreach (var (text, id) in model.Vocab) _tokens[id] = text;
        foreach (var t in added.Tokens) _tokens[t.Id] = t.Content;
    }

    /// <summary>The folder the files were read from.</summary>
    public string Folder { get; }

    /// <summary>One more than the largest id of the model or the added tokens.</summary>
    public int VocabSize => _tokens.Length;

    public int BosId { get; private init; } = -1;
    public int EosId { get; private init; } = -1;
    public int PadId { get; private init; } = -1;
    public int UnkId => _model.UnkId ?? -1;
    public bool AddBos { get; private init; }
    public bool AddEos { get; private init; }

    /// <summary>Token text of <paramref name="id"/> (added tokens first, as tokenizers' <c>id_to_token</c>), or null for a gap.</summary>
    public string? TokenText(int id) => (uint)id < (uint)_tokens.Length ? _tokens[id] : null;

    /// <summary>Whether <paramref name="id"/> is an added token marked <c>special</c> (dropped by decode).</summary>
    public bool IsSpecial(int id) => _added.ById.TryGetValue(id, out var t) && t.Special;

    /// <summary>Reads <c>tokenizer.json</c> and the optional config files of <paramref name="folder"/>.</summary>
    public static HfTokenizer Load(string folder)
    {
        string path = Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(path))
            throw new FileNotFoundException($"{folder}: no tokenizer.json (only Hugging Face fast-tokenizer files are read; " +
                "a folder with only tokenizer.model or vocab.json/merges.txt is not supported)", path);
        var root = ReadObject(path);
        HfTokenizer tokenizer;
        try
        {
            tokenizer = FromJson(folder, root);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
        var config = File.Exists(Path.Combine(folder, "tokenizer_config.json")) ? ReadObject(Path.Combine(folder, "tokenizer_config.json")) : null;
        var map = File.Exists(Path.Combine(folder, "special_tokens_map.json")) ? ReadObject(Path.Combine(folder, "special_tokens_map.json")) : null;
        return tokenizer.WithSpecialTokens(root, config, map);
    }

    static JsonObject ReadObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e);
        }
    }

    static HfTokenizer FromJson(string folder, JsonObject root)
    {
        var model = root["model"] ?? throw new InvalidDataException("field \"model\" is missing");
        string type = HfJson.OptionalString(model, "type") ?? "BPE";
        if (type != "BPE")
            throw new InvalidDataException($"field \"model.type\" is \"{type}\"; only \"BPE\" tokenizers are supported (Llama, Llama 3, Qwen2, Mistral)");
        if (model["dropout"] is JsonValue d && d.GetValueKind() == JsonValueKind.Number && d.GetValue<double>() > 0)
            throw new InvalidDataException("field \"model.dropout\" is set; BPE dropout is not supported");
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (!string.IsNullOrEmpty(HfJson.OptionalString(model, affix)))
                throw new InvalidDataException($"field \"model.{affix}\" is set; it is not supported");
        var vocabNode = model["vocab"] as JsonObject ?? throw new InvalidDataException("field \"model.vocab\" is missing or not an object");
        var vocab = new Dictionary<string, int>(vocabNode.Count, StringComparer.Ordinal);
        foreach (var (text, idNode) in vocabNode)
            vocab[text] = idNode is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<int>()
                : throw new InvalidDataException($"field \"model.vocab\" entry \"{text}\" is not a number");
        var merges = new List<(string, string)>();
        var mergesNode = HfJson.Array(model, "merges", "model");
        for (int i = 0; i < mergesNode.Count; i++)
        {
            switch (mergesNode[i])
            {
                case JsonValue s when s.GetValueKind() == JsonValueKind.String:
                    string m = s.GetValue<string>();
                    int space = m.IndexOf(' ', StringComparison.Ordinal);
                    if (space <= 0 || space == m.Length - 1 || m.IndexOf(' ', space + 1) >= 0)
                        throw new InvalidDataException($"field \"model.merges[{i}]\" is \"{m}\"; expected \"left right\"");
                    merges.Add((m[..space], m[(space + 1)..]));
                    break;
                case JsonArray { Count: 2 } pair:
                    merges.Add((pair[0]!.GetValue<string>(), pair[1]!.GetValue<string>()));
                    break;
                default:
                    throw new InvalidDataException($"field \"model.merges[{i}]\" is neither \"left right\" nor [left, right]");
            }
        }
        var bpe = new BpeModel(vocab, merges, HfJson.OptionalString(model, "unk_token"), HfJson.Bool(model, "byte_fallback", false),
            HfJson.Bool(model, "fuse_unk", false), HfJson.Bool(model, "ignore_merges", false));
        return new HfTokenizer(folder, HfNormalizer.Parse(root["normalizer"], "normalizer"),
            HfPreTokenizer.Parse(root["pre_tokenizer"], "pre_tokenizer"), HfDecoder.Parse(root["decoder"], "decoder"), bpe,
            AddedVocabulary.Parse(root["added_tokens"], "added_tokens"));
    }

    // BOS/EOS/PAD and add_bos_token/add_eos_token: tokenizer_config.json first, then special_tokens_map.json, then the
    // post-processor's template (Llama 3 adds BOS there and says nothing in its config).
    HfTokenizer WithSpecialTokens(JsonObject root, JsonObject? config, JsonObject? map)
    {
        var (templateFirst, templateLast) = TemplateSpecialTokens(root["post_processor"]);
        int Id(string key)
        {
            foreach (var (source, file) in new[] { (config, "tokenizer_config.json"), (map, "special_tokens_map.json") })
            {
                if (source is null || !source.ContainsKey(key)) continue;
                var node = source[key];
                string? content = node switch
                {
                    null => null,
                    JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
                    JsonObject o => HfJson.OptionalString(o, "content"),
                    _ => throw new InvalidDataException($"{Path.Combine(Folder, file)}: field \"{key}\" is neither a string nor an object"),
                };
                if (content is null) return -1;
                return IdOf(content) ?? throw new InvalidDataException($"{Path.Combine(Folder, file)}: field \"{key}\" is \"{content}\", which is not in tokenizer.json");
            }
            return -1;
        }
        bool? Flag(string key) => config?[key] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : null;

        int bos = Id("bos_token");
        int templateBos = templateFirst is null ? -1 : IdOf(templateFirst) ?? -1;
        if (bos < 0) bos = templateBos;
        int eos = Id("eos_token");
        return new HfTokenizer(Folder, _normalizer, _preTokenizer, _decoder, _model, _added)
        {
            BosId = bos,
            EosId = eos,
            PadId = Id("pad_token"),
            AddBos = bos >= 0 && (Flag("add_bos_token") ?? templateBos == bos && templateBos >= 0),
            AddEos = eos >= 0 && (Flag("add_eos_token") ?? (templateLast is not null && IdOf(templateLast) == eos)),
        };
    }

    int? IdOf(string content)
    {
        foreach (var t in _added.Tokens) if (t.Content == content) return t.Id;
        return _model.Vocab.TryGetValue(content, out int id) ? id : null;
    }

    // The special tokens before and after $A in a TemplateProcessing "single" template (also inside a Sequence).
    static (string? First, string? Last) TemplateSpecialTokens(JsonNode? post)
    {
        if (post is null) return (null, null);
        string? type = HfJson.OptionalString(post, "type");
        if (type == "Sequence" && post["processors"] is JsonArray list)
        {
            foreach (var p in list)
                if (TemplateSpecialTokens(p) is { } found && (found.First ?? found.Last) is not null) return found;
            return (null, null);
        }
        if (type != "TemplateProcessing" || post["single"] is not JsonArray single || single.Count == 0) return (null, null);
        static string? Special(JsonNode? piece) => piece?["SpecialToken"]?["id"]?.GetValue<string>();
        return (Special(single[0]), single.Count > 1 ? Special(single[^1]) : null);
    }

    /// <summary>Ids of <paramref name="text"/> as tokenizers' <c>encode(text, add_special_tokens=False)</c>.</summary>
    public void Encode(string text, List<int> output)
    {
        text = ReplaceLoneSurrogates(text);
        foreach (var (segment, start, id) in _added.Split(text, normalizedPass: false))
        {
            if (id is { } added)
            {
                output.Add(added);
                continue;
            }
            if (segment.Length == 0) continue;
            string normalized = _normalizer?.Normalize(segment) ?? segment;
            foreach (var (piece, pieceStart, pieceId) in _added.Split(normalized, normalizedPass: true))
            {
                if (pieceId is { } normalizedAdded)
                {
                    output.Add(normalizedAdded);
                    continue;
                }
                if (piece.Length == 0) continue;
                var words = new List<PreToken> { new(piece, start == 0 && pieceStart == 0) };
                if (_preTokenizer is not null) words = _preTokenizer.Apply(words);
                foreach (var w in words) _model.Encode(w.Text, output);
            }
        }
    }

    /// <summary>Text of <paramref name="ids"/> as tokenizers' <c>decode</c>; ids outside the vocabulary are skipped, as there.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>();
        foreach (int id in ids)
        {
            if (TokenText(id) is not { } text) continue;
            if (skipSpecialTokens && IsSpecial(id)) continue;
            tokens.Add(text);
        }
        return _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.DecodeChain(tokens));
    }

    static string ReplaceLoneSurrogates(string text)
    {
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0) return text;
        var sb = new StringBuilder(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) sb.Append(c).Append(text[++i]);
            else sb.Append(char.IsSurrogate(c) ? '\uFFFD' : c);
        }
        return sb.ToString();
    }

    /// <summary>
    /// The vocabulary as llama.cpp's <c>gpt2</c> (byte-level BPE with a pre-tokenizer regex it knows) or <c>llama</c>
    /// (SentencePiece-style BPE with byte fallback) tokenizer.
    /// </summary>
    /// <exception cref="NotSupportedException">llama.cpp has no tokenizer that encodes like this one; the message says why.</exception>
    public GgufVocabulary ToGguf()
    {
        var (tokens, tokenTypes) = Entries();
        var types = tokenTypes.Select(t => (int)t).ToArray();
        string? pre = ByteLevelPreName(out string? byteLevelProblem);
        if (pre is not null)
        {
            var merges = _model.MergeRanks.Select(m => m.Left + " " + m.Right).ToArray();
            return new GgufVocabulary("gpt2", pre, tokens, new float[VocabSize], types, merges, BosId, EosId, UnkId, PadId, AddBos, false);
        }
        if (byteLevelProblem is not null) throw Inexpressible(byteLevelProblem);
        if (!_model.ByteFallback) throw Inexpressible("a BPE model without byte-level pre-tokenizer or byte_fallback");
        if (!IsSentencePieceStyle(out string? problem)) throw Inexpressible(problem!);
        // llama.cpp's SentencePiece tokenizer merges the pair whose result scores highest: rank the pieces by the merge
        // that makes them, earliest first.
        var scores = new float[VocabSize];
        for (int id = 0; id < VocabSize; id++) scores[id] = -VocabSize;
        for (int rank = 0; rank < _model.MergeRanks.Count; rank++)
        {
            var (l, r) = _model.MergeRanks[rank];
            if (_model.Vocab.TryGetValue(l + r, out int id) && scores[id] == -VocabSize) scores[id] = -rank;
        }
        return new GgufVocabulary("llama", null, tokens, scores, types, null, BosId, EosId, UnkId, PadId, AddBos, true);
    }

    /// <summary>
    /// Token text and llama.cpp type per id: special added tokens are control tokens, other added tokens user-defined,
    /// <c>&lt;0xXX&gt;</c> pieces of a byte-fallback model bytes, gaps in the ids unused <c>[UNUSED{id}]</c> entries.
    /// </summary>
    public (string[] Tokens, TokenType[] Types) Entries()
    {
        var tokens = new string[VocabSize];
        var types = new TokenType[VocabSize];
        for (int id = 0; id < VocabSize; id++)
        {
            tokens[id] = _tokens[id] ?? $"[UNUSED{id}]";
            types[id] = _tokens[id] is null ? TokenType.Unused
                : _added.ById.TryGetValue(id, out var a) ? (a.Special ? TokenType.Control : TokenType.UserDefined)
                : id == UnkId ? TokenType.Unknown
                : TokenType.Normal;
        }
        if (_model.ByteFallback)
            for (int b = 0; b < 256; b++)
                if (_model.Vocab.TryGetValue(BpeModel.BytePiece((byte)b), out int id) && types[id] == TokenType.Normal) types[id] = TokenType.Byte;
        return (tokens, types);
    }

    static NotSupportedException Inexpressible(string what) => new(
        $"The llama.cpp engine cannot express this tokenizer ({what}); use the torch engine (EngineOptions.Backend = Torch), which takes any tokenizer.");

    // llama.cpp's name for a byte-level pre-tokenizer; null when the tokenizer is not byte-level (problem null) or is
    // byte-level in a way llama.cpp has no name for (problem says how).
    string? ByteLevelPreName(out string? problem)
    {
        problem = null;
        var parts = _preTokenizer switch
        {
            HfPreTokenizer.SequencePreTokenizer s => s.Parts.ToList(),
            null => [],
            var single => [single],
        };
        var byteLevel = parts.OfType<HfPreTokenizer.ByteLevelPreTokenizer>().ToList();
        if (byteLevel.Count == 0) return null;
        if (_model.ByteFallback) { problem = "byte-level pre-tokenizer together with byte_fallback"; return null; }
        if (byteLevel[0].AddPrefixSpace) { problem = "ByteLevel add_prefix_space = true"; return null; }
        if (_normalizer is not (null or HfNormalizer.UnicodeNormalizer { Form: NormalizationForm.FormC }))
        {
            problem = "a normalizer other than NFC on a byte-level tokenizer";
            return null;
        }
        if (parts.Count == 1 && byteLevel[0].UseRegex) return "gpt-2";
        if (parts.Count == 2 && parts[0] is HfPreTokenizer.SplitPreTokenizer { Behavior: "Isolated" } split && !byteLevel[0].UseRegex)
        {
            if (split.SourcePattern == Llama3Pattern) return "llama-bpe";
            if (split.SourcePattern == Qwen2Pattern) return "qwen2";
            problem = $"pre-tokenizer regex {split.SourcePattern ?? "(string pattern)"}, which llama.cpp has no pre-tokenizer for";
            return null;
        }
        problem = "a byte-level pre-tokenizer sequence llama.cpp has no pre-tokenizer for";
        return null;
    }

    // Llama 2 (normalizer Prepend('▁') + Replace(' ', '▁'), no pre-tokenizer) or the newer form (Metaspace that does not
    // split, prepending to the first piece or always, no normalizer): both are llama.cpp's SPM with add_space_prefix.
    bool IsSentencePieceStyle(out string? problem)
    {
        problem = null;
        if (_preTokenizer is null && _normalizer is HfNormalizer.SequenceNormalizer { Parts: [HfNormalizer.PrependNormalizer { Prefix: "\u2581" },
                HfNormalizer.ReplaceNormalizer { Pattern: " ", Content: "\u2581" }] })
            return true;
        if (_normalizer is null && _preTokenizer is HfPreTokenizer.MetaspacePreTokenizer { Replacement: '\u2581', SplitWords: false } m && m.PrependScheme != "never")
            return true;
        problem = "byte_fallback BPE whose normalizer and pre-tokenizer are not SentencePiece's escape of spaces as U+2581 with a prefix";
        return false;
    }
}
