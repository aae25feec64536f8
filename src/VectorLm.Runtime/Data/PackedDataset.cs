using System.Text.Json;
using VectorLm.Tokenization;

namespace VectorLm.Data;

/// <summary>
/// Token sequences of one fixed length, packed back to back from documents or prompt/completion examples, with
/// labels already shifted for next-token prediction (<c>-100</c> where no loss is taken).
/// </summary>
/// <remarks>
/// Every document or example becomes <c>&lt;s&gt; tokens &lt;/s&gt;</c>; the streams are concatenated and cut into
/// windows of <see cref="SequenceLength"/> + 1 tokens, so examples may share a window (attention is not masked
/// between them, as in common packed pre-training). The last window is padded with <c>&lt;/s&gt;</c> and label -100.
/// For prompt/completion examples only the completion and its <c>&lt;/s&gt;</c> carry labels.
/// </remarks>
public sealed class PackedDataset
{
    /// <summary>The label value that takes no loss.</summary>
    public const long IgnoreIndex = -100;

    readonly long[] _inputs;
    readonly long[] _labels;

    /// <summary>Tokens per sequence.</summary>
    public int SequenceLength { get; }
    /// <summary>Number of sequences.</summary>
    public int Count { get; }
    /// <summary>Total tokens that carry a label.</summary>
    public long TargetTokens { get; }

    PackedDataset(List<long> tokens, List<bool> targets, int sequenceLength, long padId, string source)
    {
        if (tokens.Count < 2 || !targets.Skip(1).Any(t => t))
            throw new InvalidDataException($"{source}: the dataset is empty (no tokens to train on)");
        SequenceLength = sequenceLength;
        Count = (tokens.Count - 1 + sequenceLength - 1) / sequenceLength;
        _inputs = new long[(long)Count * sequenceLength];
        _labels = new long[(long)Count * sequenceLength];
        long targetCount = 0;
        for (long i = 0; i < _inputs.Length; i++)
        {
            // Window k covers tokens [k*T, k*T + T]; consecutive windows overlap by one token so no target is lost.
            bool inRange = i < tokens.Count - 1;
            _inputs[i] = inRange ? tokens[(int)i] : padId;
            bool target = inRange && targets[(int)i + 1];
            _labels[i] = target ? tokens[(int)i + 1] : IgnoreIndex;
            if (target) targetCount++;
        }
        TargetTokens = targetCount;
    }

    static void CheckLength(int sequenceLength)
    {
        if (sequenceLength < 1) throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "sequence length must be positive");
    }

    /// <summary>Packs plain-text documents; every token is a target.</summary>
    public static PackedDataset FromDocuments(IEnumerable<string> documents, Tokenizer tokenizer, int sequenceLength, string source = "documents")
    {
        CheckLength(sequenceLength);
        var tokens = new List<long>();
        foreach (string doc in documents)
        {
            if (doc.Length == 0) continue;
            foreach (int id in tokenizer.Encode(doc, addBos: AddsBos(tokenizer), addEos: true)) tokens.Add(id);
        }
        return new PackedDataset(tokens, Enumerable.Repeat(true, tokens.Count).ToList(), sequenceLength, tokenizer.EosId, source);
    }

    // Hugging Face tokenizers without BOS (Qwen2) or that do not add it (add_bos_token false) start documents with text.
    static bool AddsBos(Tokenizer tokenizer) => tokenizer.AddBosToken && tokenizer.BosId >= 0;

    /// <summary>Packs a plain-text file: each non-blank line is one document.</summary>
    public static PackedDataset FromTextFile(string path, Tokenizer tokenizer, int sequenceLength) =>
        FromDocuments(File.ReadLines(path).Where(l => !string.IsNullOrWhiteSpace(l)), tokenizer, sequenceLength, path);

    /// <summary>Packs already tokenized text (every token a target); the last window is padded with <paramref name="padId"/>.</summary>
    public static PackedDataset FromTokenIds(IEnumerable<int> ids, int sequenceLength, int padId = 2, string source = "token ids")
    {
        CheckLength(sequenceLength);
        var tokens = ids.Select(i => (long)i).ToList();
        return new PackedDataset(tokens, Enumerable.Repeat(true, tokens.Count).ToList(), sequenceLength, padId, source);
    }

    /// <summary>Packs prompt/completion examples; only completion tokens (and the closing <c>&lt;/s&gt;</c>) carry labels.</summary>
    public static PackedDataset FromExamples(IEnumerable<PromptCompletion> examples, Tokenizer tokenizer, int sequenceLength, string source = "examples")
    {
        CheckLength(sequenceLength);
        var tokens = new List<long>();
        var targets = new List<bool>();
        if (tokenizer.EosId < 0) throw new ArgumentException("The tokenizer has no EOS token (its tokenizer_config.json names no eos_token); examples end with one.", nameof(tokenizer));
        foreach (var ex in examples)
        {
            if (AddsBos(tokenizer))
            {
                tokens.Add(tokenizer.BosId);
                targets.Add(false);
            }
            foreach (int id in tokenizer.Encode(ex.Prompt)) { tokens.Add(id); targets.Add(false); }
            foreach (int id in tokenizer.Encode(ex.Completion)) { tokens.Add(id); targets.Add(true); }
            tokens.Add(tokenizer.EosId);
            targets.Add(true);
        }
        return new PackedDataset(tokens, targets, sequenceLength, tokenizer.EosId, source);
    }

    /// <summary>Reads JSONL of <c>{"prompt": ..., "completion": ...}</c> objects (blank lines skipped).</summary>
    /// <exception cref="InvalidDataException">A line is not such an object; the message names the file and line.</exception>
    public static IReadOnlyList<PromptCompletion> ReadJsonl(string path)
    {
        var list = new List<PromptCompletion>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object
                    || !root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind != JsonValueKind.String
                    || !root.TryGetProperty("completion", out var completion) || completion.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException($"{path}:{lineNumber}: expected {{\"prompt\": string, \"completion\": string}}");
                list.Add(new PromptCompletion(prompt.GetString()!, completion.GetString()!));
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{path}:{lineNumber}: not JSON: {e.Message}", e);
            }
        }
        return list;
    }

    /// <summary>Packs a JSONL file of prompt/completion examples.</summary>
    public static PackedDataset FromJsonlFile(string path, Tokenizer tokenizer, int sequenceLength) =>
        FromExamples(ReadJsonl(path), tokenizer, sequenceLength, path);

    /// <summary>Input ids of sequence <paramref name="index"/>.</summary>
    public ReadOnlySpan<long> Inputs(int index) => _inputs.AsSpan(checked(index * SequenceLength), SequenceLength);
    /// <summary>Shifted labels of sequence <paramref name="index"/>.</summary>
    public ReadOnlySpan<long> Labels(int index) => _labels.AsSpan(checked(index * SequenceLength), SequenceLength);
}
