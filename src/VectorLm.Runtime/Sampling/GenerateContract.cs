using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace VectorLm.Sampling;

/// <summary>
/// What every <see cref="ISamplingEngine"/> does the same way around its own decode loop: parameter and prompt checks,
/// the collective (barrier, fingerprint check, data-parallel split or main-rank broadcast) and the finish rules
/// (end of sequence, stop strings, length).
/// </summary>
internal static class GenerateContract
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field of <paramref name="p"/>.</summary>
    public static void Validate(SamplingParams p)
    {
        if (p.N < 1) throw new ArgumentException($"SamplingParams.N must be at least 1, got {p.N}.", "parameters");
        if (!(p.Temperature >= 0)) throw new ArgumentException($"SamplingParams.Temperature must be >= 0, got {p.Temperature}.", "parameters");
        if (!(p.TopP > 0 && p.TopP <= 1)) throw new ArgumentException($"SamplingParams.TopP must be in (0, 1], got {p.TopP}.", "parameters");
        if (p.MaxNewTokens < 1) throw new ArgumentException($"SamplingParams.MaxNewTokens must be at least 1, got {p.MaxNewTokens}.", "parameters");
        if (p.TopK < 0) throw new ArgumentException($"SamplingParams.TopK must be >= 0, got {p.TopK}.", "parameters");
        if (!(p.MinP >= 0 && p.MinP <= 1)) throw new ArgumentException($"SamplingParams.MinP must be in [0, 1], got {p.MinP}.", "parameters");
        if (p.Stop is null) throw new ArgumentException("SamplingParams.Stop must not be null.", "parameters");
    }

    /// <summary>Prompt token lists as the engine feeds them (BOS added when asked), each checked against the context.</summary>
    public static List<int[]> Tokenize(IReadOnlyList<string> prompts, ITokenCodec codec, bool addBos, int contextLength)
    {
        var result = new List<int[]>(prompts.Count);
        for (int i = 0; i < prompts.Count; i++)
        {
            var prompt = prompts[i] ?? throw new ArgumentException($"Prompt {i} is null.", nameof(prompts));
            result.Add(CheckPrompt(PromptIds(codec, addBos, prompt), i, contextLength, vocabSize: int.MaxValue, nameof(prompts)));
        }
        return result;
    }

    /// <summary>The ids fed for <paramref name="prompt"/>: the tokenizer's, after BOS when the engine and the tokenizer both add one.</summary>
    public static int[] PromptIds(ITokenCodec codec, bool addBos, string prompt)
    {
        var ids = codec.Encode(prompt);
        return addBos && codec.AddBos && codec.BosId >= 0 ? [codec.BosId, .. ids] : ids;
    }

    /// <summary>Prompts given as token ids (fed exactly as given: no BOS is added), checked for length and range.</summary>
    public static List<int[]> CheckTokens(IReadOnlyList<int[]> prompts, int contextLength, int vocabSize)
    {
        var result = new List<int[]>(prompts.Count);
        for (int i = 0; i < prompts.Count; i++)
            result.Add(CheckPrompt(prompts[i] ?? throw new ArgumentException($"Prompt {i} is null.", nameof(prompts)), i, contextLength, vocabSize, nameof(prompts)));
        return result;
    }

    static int[] CheckPrompt(int[] ids, int index, int contextLength, int vocabSize, string parameter)
    {
        if (ids.Length > contextLength)
            throw new ArgumentException($"Prompt {index} is {ids.Length} tokens long, more than the engine's context length of {contextLength} tokens.", parameter);
        if (ids.Length == 0)
            throw new ArgumentException($"Prompt {index} has no tokens (empty prompt with AddBos off).", parameter);
        for (int t = 0; t < ids.Length; t++)
            if ((uint)ids[t] >= (uint)vocabSize)
                throw new ArgumentException($"Prompt {index} has token id {ids[t]} at position {t}, outside the vocabulary [0, {vocabSize}).", parameter);
        return ids;
    }

    /// <summary>A short hash of the prompts and parameters, compared across ranks.</summary>
    public static string Fingerprint(IReadOnlyList<string> prompts, SamplingParams p)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var prompt in prompts)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(prompt ?? "\0null"));
            sha.AppendData([0xFF]);
        }
        sha.AppendData(JsonSerializer.SerializeToUtf8Bytes(p));
        return Convert.ToHexString(sha.GetHashAndReset(), 0, 12);
    }

    /// <inheritdoc cref="Fingerprint(IReadOnlyList{string}, SamplingParams)"/>
    public static string Fingerprint(IReadOnlyList<int[]> prompts, SamplingParams p)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha.AppendData("ids"u8);
        foreach (var prompt in prompts)
        {
            if (prompt is null) sha.AppendData([0xFE]);
            else foreach (int id in prompt) sha.AppendData(BitConverter.GetBytes(id));
            sha.AppendData([0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        sha.AppendData(JsonSerializer.SerializeToUtf8Bytes(p));
        return Convert.ToHexString(sha.GetHashAndReset(), 0, 12);
    }

    /// <summary>
    /// The collective part of Generate, under the engine's lock: barrier and fingerprint check across ranks, then
    /// <paramref name="prepare"/> (prompt checks), <paramref name="sync"/> (weights), the local decode of this rank's
    /// share and the exchange of results as <paramref name="mode"/> says, then <paramref name="after"/> and a final barrier.
    /// </summary>
    public static IReadOnlyList<Completion> Run(TrainerContext context, DistributedGenerateMode mode, string fingerprint, int count,
        Func<List<int[]>> prepare, Action sync, Func<IReadOnlyList<int>, List<int[]>, List<Completion>> local, Action after,
        string member, string file, int line)
    {
        int world = context.WorldSize;
        if (world > 1)
        {
            // Barrier first: the trainer is done with the device before the engine starts.
            context.Barrier(member, file, line);
            var hashes = context.AllGatherObject(fingerprint, member, file, line);
            for (int r = 0; r < hashes.Count; r++)
                if (hashes[r] != hashes[context.Rank])
                    throw new InvalidOperationException($"Generate was called with different prompts or parameters on rank {r} " +
                        $"than on rank {context.Rank} (fingerprints {hashes[r]} vs {hashes[context.Rank]}); every rank must pass the same ones.");
        }
        if (count == 0)
        {
            if (world > 1) context.Barrier(member, file, line);
            return Array.Empty<Completion>();
        }
        var tokenized = prepare();
        sync();
        IReadOnlyList<Completion> result;
        var all = Enumerable.Range(0, count).ToList();
        if (world == 1)
            result = local(all, tokenized);
        else if (mode == DistributedGenerateMode.MainRank)
        {
            var mine = context.IsMainRank ? local(all, tokenized) : new List<Completion>();
            result = context.BroadcastObject(mine.ToList(), 0, member, file, line);
        }
        else
        {
            var share = all.Where(i => i % world == context.Rank).ToList();
            var gathered = context.AllGatherObject(local(share, tokenized).ToList(), member, file, line);
            result = gathered.SelectMany(c => c).OrderBy(c => c.PromptIndex).ToList();
        }
        after();
        if (world > 1) context.Barrier(member, file, line);
        return result;
    }

    /// <summary>
    /// Whether a sample ends after its latest token (the last of <paramref name="generated"/>); <paramref name="fed"/>
    /// is the number of tokens in its KV cache. <paramref name="text"/> is the final text when it is not simply the
    /// decoded tokens.
    /// </summary>
    public static FinishReason? Finish(ITokenCodec codec, List<int> generated, int fed, int contextLength, SamplingParams p, out string? text)
    {
        text = null;
        if (generated[^1] == codec.EosId && !p.IgnoreEos)
        {
            text = codec.Decode(generated.Take(generated.Count - 1).ToArray());
            return FinishReason.EndOfSequence;
        }
        if (p.Stop.Count > 0)
        {
            var decoded = codec.Decode(generated);
            int end = -1;
            foreach (var stop in p.Stop)
            {
                if (stop.Length == 0) continue;
                int at = decoded.IndexOf(stop, StringComparison.Ordinal);
                if (at >= 0 && (end < 0 || at + stop.Length < end)) end = at + stop.Length;
            }
            if (end >= 0)
            {
                text = decoded[..end];
                return FinishReason.Stop;
            }
        }
        // The next token would need a KV position past the context.
        if (generated.Count >= p.MaxNewTokens || fed >= contextLength) return FinishReason.Length;
        return null;
    }
}
