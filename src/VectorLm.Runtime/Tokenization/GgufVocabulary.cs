namespace VectorLm.Tokenization;

/// <summary>
/// A vocabulary as llama.cpp reads it from GGUF metadata (<c>tokenizer.ggml.*</c>), padded to the model's
/// <c>vocab_size</c>.
/// </summary>
/// <param name="Model"><c>tokenizer.ggml.model</c>: "llama" (SentencePiece-style BPE) or "gpt2" (byte-level BPE).</param>
/// <param name="Pre"><c>tokenizer.ggml.pre</c>: llama.cpp's name of the pre-tokenizer regex (gpt2 only).</param>
/// <param name="Tokens">Token text per id.</param>
/// <param name="Scores">Merge priority per id (llama only; higher merges first).</param>
/// <param name="Types">llama.cpp token type per id (<see cref="TokenType"/> values).</param>
/// <param name="Merges">"left right" merges in rank order (gpt2 only).</param>
/// <param name="BosId">Beginning-of-sequence id, -1 for none.</param>
/// <param name="EosId">End-of-sequence id, -1 for none.</param>
/// <param name="UnkId">Unknown-token id, -1 for none.</param>
/// <param name="PadId">Padding id, -1 for none.</param>
/// <param name="AddBos">Whether BOS is prepended to prompts.</param>
/// <param name="AddSpacePrefix">Whether a space is put in front of the text (SentencePiece's dummy prefix).</param>
public sealed record GgufVocabulary(string Model, string? Pre, IReadOnlyList<string> Tokens, IReadOnlyList<float> Scores,
    IReadOnlyList<int> Types, IReadOnlyList<string>? Merges, int BosId, int EosId, int UnkId, int PadId, bool AddBos,
    bool AddSpacePrefix)
{
    /// <summary>
    /// This vocabulary with <paramref name="size"/> entries: extra ids (a model's <c>vocab_size</c> is often rounded
    /// up past the tokenizer's) become unused <c>[PAD{id}]</c> tokens, as convert_hf_to_gguf.py writes them.
    /// </summary>
    /// <exception cref="ArgumentException">The tokenizer has more tokens than <paramref name="size"/>.</exception>
    public GgufVocabulary PaddedTo(int size)
    {
        if (size < Tokens.Count)
            throw new ArgumentException($"The tokenizer has {Tokens.Count} tokens; the model's vocab_size is only {size}.");
        if (size == Tokens.Count) return this;
        int extra = size - Tokens.Count;
        return this with
        {
            Tokens = [.. Tokens, .. Enumerable.Range(Tokens.Count, extra).Select(i => $"[PAD{i}]")],
            Scores = [.. Scores, .. Enumerable.Repeat(0f, extra)],
            Types = [.. Types, .. Enumerable.Repeat((int)TokenType.Unused, extra)],
        };
    }
}
