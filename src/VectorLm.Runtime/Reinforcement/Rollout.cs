using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Reinforcement;

/// <summary>
/// One rank's share of a rollout as padded tensors on the trainer's device: for every completion (row) its prompt and
/// completion tokens, where to read their log-probabilities, the engine's log-probabilities and the advantage.
/// </summary>
/// <remarks>
/// <para>Row layout of <see cref="InputIds"/>: the prompt's tokens as the engine saw them, the completion's tokens, then
/// padding. No row has padding in front, so every row sees positions from 0 as in the engine and the causal model
/// needs no attention mask: padding comes after every real token and cannot change their logits.</para>
/// <para>Completion tensors (<see cref="CompletionIds"/>, <see cref="CompletionMask"/>, <see cref="EngineLogProbs"/>,
/// <see cref="Positions"/>) are <c>[rows, C]</c> with C the longest completion of this shard.</para>
/// <para>Sharding: <c>ISamplingEngine.Generate</c> returns the whole rollout on every rank; <see cref="Create"/> keeps a
/// contiguous block of prompts with all of their samples (a group never straddles ranks, so group statistics need no
/// collective), and every rank gets the same number of rows, so the per-rank losses average into the global one.</para>
/// </remarks>
public sealed class Rollout : IDisposable
{
    /// <summary>Prompt then completion tokens per row, padded after the end: <c>[rows, L]</c> int64.</summary>
    public Tensor InputIds { get; }
    /// <summary>1 where <see cref="InputIds"/> holds a prompt token: <c>[rows, L]</c> float32.</summary>
    public Tensor PromptMask { get; }
    /// <summary>Completion token ids, padded: <c>[rows, C]</c> int64.</summary>
    public Tensor CompletionIds { get; }
    /// <summary>1 on a completion's real tokens, 0 on padding: <c>[rows, C]</c> float32.</summary>
    public Tensor CompletionMask { get; }
    /// <summary>Index into the logits' sequence dimension that predicts each completion token (prompt length - 1 + j): <c>[rows, C]</c> int64.</summary>
    public Tensor Positions { get; }
    /// <summary>The engine's log-probability of each sampled token (0 on padding): <c>[rows, C]</c> float32.</summary>
    public Tensor EngineLogProbs { get; }
    /// <summary>Advantage of each row: <c>[rows]</c> float32.</summary>
    public Tensor Advantages { get; }

    /// <summary>Rows in this shard (prompts of the shard times the group size).</summary>
    public int Rows { get; }
    /// <summary>Samples per prompt.</summary>
    public int GroupSize { get; }
    /// <summary>Index into the whole rollout's prompt list of each row's prompt.</summary>
    public IReadOnlyList<int> PromptIndices { get; }
    /// <summary>Engine weight version that sampled each row.</summary>
    public IReadOnlyList<long> WeightVersions { get; }
    /// <summary>Completion tokens of the whole rollout, all ranks together (the DAPO normaliser).</summary>
    public long TotalCompletionTokens { get; }
    /// <summary>Ranks the rollout was split over.</summary>
    public int WorldSize { get; }

    Rollout(Tensor inputIds, Tensor promptMask, Tensor completionIds, Tensor completionMask, Tensor positions, Tensor engineLogProbs,
        Tensor advantages, int groupSize, int[] promptIndices, long[] versions, long totalTokens, int worldSize)
    {
        InputIds = inputIds;
        PromptMask = promptMask;
        CompletionIds = completionIds;
        CompletionMask = completionMask;
        Positions = positions;
        EngineLogProbs = engineLogProbs;
        Advantages = advantages;
        Rows = promptIndices.Length;
        GroupSize = groupSize;
        PromptIndices = promptIndices;
        WeightVersions = versions;
        TotalCompletionTokens = totalTokens;
        WorldSize = worldSize;
    }

    /// <summary>The prompt indices of <paramref name="rank"/>'s shard: a contiguous block of <c>prompts / worldSize</c>.</summary>
    /// <exception cref="ArgumentException">The prompts do not split evenly over the ranks.</exception>
    public static Range ShardOf(int promptCount, int rank, int worldSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if ((uint)rank >= (uint)worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {worldSize})");
        if (promptCount % worldSize != 0)
            throw new ArgumentException($"{promptCount} prompts do not split evenly over {worldSize} ranks; use a multiple of the world size " +
                "so that every rank trains on the same number of groups", nameof(promptCount));
        int per = promptCount / worldSize;
        return new Range(rank * per, (rank + 1) * per);
    }

    /// <summary>
    /// Builds <paramref name="rank"/>'s share of the rollout <paramref name="completions"/> (one <see cref="Completion"/>
    /// per prompt, in prompt order, each with the same number of samples) on <paramref name="device"/>.
    /// </summary>
    /// <param name="prompts">The prompts passed to <c>Generate</c>.</param>
    /// <param name="completions">What <c>Generate</c> returned (the whole rollout, on every rank).</param>
    /// <param name="tokenizePrompt">The engine's tokenization of a prompt (BOS included when the engine adds it), e.g. <see cref="IColocatedSampler.TokenizePrompt"/>.</param>
    /// <param name="advantages">One advantage per sample of the whole rollout, prompt-major (<c>prompt * groupSize + sample</c>).</param>
    /// <param name="rank">This rank.</param>
    /// <param name="worldSize">Ranks sharing the rollout.</param>
    /// <param name="device">The trainer's device; CPU when null.</param>
    /// <param name="padId">Token id written into padding (never read by the loss).</param>
    public static Rollout Create(IReadOnlyList<string> prompts, IReadOnlyList<Completion> completions, Func<string, int[]> tokenizePrompt,
        IReadOnlyList<float> advantages, int rank = 0, int worldSize = 1, Device? device = null, int padId = 0)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(completions);
        ArgumentNullException.ThrowIfNull(tokenizePrompt);
        ArgumentNullException.ThrowIfNull(advantages);
        if (completions.Count != prompts.Count)
            throw new ArgumentException($"{completions.Count} completions for {prompts.Count} prompts; pass what Generate returned for these prompts", nameof(completions));
        if (prompts.Count == 0) throw new ArgumentException("the rollout is empty", nameof(prompts));
        int group = completions[0].Samples.Count;
        for (int i = 0; i < completions.Count; i++)
        {
            if (completions[i].PromptIndex != i)
                throw new ArgumentException($"completion {i} belongs to prompt {completions[i].PromptIndex}; completions must be in prompt order", nameof(completions));
            if (completions[i].Samples.Count != group)
                throw new ArgumentException($"prompt {i} has {completions[i].Samples.Count} samples, prompt 0 has {group}; every group must have the same size", nameof(completions));
        }
        if (group == 0) throw new ArgumentException("the completions hold no samples", nameof(completions));
        if (advantages.Count != prompts.Count * group)
            throw new ArgumentException($"{advantages.Count} advantages for {prompts.Count} prompts x {group} samples", nameof(advantages));

        var shard = ShardOf(prompts.Count, rank, worldSize);
        var (start, end) = (shard.Start.Value, shard.End.Value);
        long totalTokens = completions.Sum(c => c.Samples.Sum(s => (long)s.TokenIds.Count));

        var promptTokens = new int[end - start][];
        for (int p = start; p < end; p++) promptTokens[p - start] = tokenizePrompt(prompts[p]);
        int rows = (end - start) * group;
        int c = Math.Max(1, completions.Skip(start).Take(end - start).SelectMany(x => x.Samples).Max(s => s.TokenIds.Count));
        int l = Math.Max(2, promptTokens.Max(t => t.Length) + c);

        var input = new long[rows * l];
        Array.Fill(input, padId);
        var promptMask = new float[rows * l];
        var ids = new long[rows * c];
        Array.Fill(ids, padId);
        var mask = new float[rows * c];
        var positions = new long[rows * c];
        var engine = new float[rows * c];
        var adv = new float[rows];
        var promptIndex = new int[rows];
        var versions = new long[rows];
        for (int p = start; p < end; p++)
        {
            var pt = promptTokens[p - start];
            if (pt.Length == 0) throw new ArgumentException($"prompt {p} has no tokens; the model needs at least one token before the completion", nameof(tokenizePrompt));
            for (int s = 0; s < group; s++)
            {
                int row = (p - start) * group + s;
                var sample = completions[p].Samples[s];
                if (sample.LogProbs.Count != sample.TokenIds.Count)
                    throw new ArgumentException($"prompt {p} sample {s}: {sample.TokenIds.Count} tokens but {sample.LogProbs.Count} log-probs", nameof(completions));
                for (int t = 0; t < pt.Length; t++)
                {
                    input[row * l + t] = pt[t];
                    promptMask[row * l + t] = 1;
                }
                for (int j = 0; j < c; j++)
                {
                    // Padding reads the last real position; the mask zeroes it.
                    positions[row * c + j] = Math.Min(pt.Length - 1 + j, l - 2);
                    if (j >= sample.TokenIds.Count) continue;
                    input[row * l + pt.Length + j] = sample.TokenIds[j];
                    ids[row * c + j] = sample.TokenIds[j];
                    mask[row * c + j] = 1;
                    engine[row * c + j] = sample.LogProbs[j];
                }
                adv[row] = advantages[p * group + s];
                promptIndex[row] = p;
                versions[row] = sample.WeightVersion;
            }
        }
        device ??= CPU;
        // Created outside any caller scope: the rollout owns its tensors until Dispose.
        using var _ = NewDisposeScope();
        var rollout = new Rollout(
            tensor(input, [rows, l], device: device).DetachFromDisposeScope(),
            tensor(promptMask, [rows, l], device: device).DetachFromDisposeScope(),
            tensor(ids, [rows, c], device: device).DetachFromDisposeScope(),
            tensor(mask, [rows, c], device: device).DetachFromDisposeScope(),
            tensor(positions, [rows, c], device: device).DetachFromDisposeScope(),
            tensor(engine, [rows, c], device: device).DetachFromDisposeScope(),
            tensor(adv, [rows], device: device).DetachFromDisposeScope(),
            group, promptIndex, versions, totalTokens, worldSize);
        return rollout;
    }

    /// <summary>Frees the tensors.</summary>
    public void Dispose()
    {
        InputIds.Dispose();
        PromptMask.Dispose();
        CompletionIds.Dispose();
        CompletionMask.Dispose();
        Positions.Dispose();
        EngineLogProbs.Dispose();
        Advantages.Dispose();
    }
}
