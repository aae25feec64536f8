using VectorLm.Models;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Reinforcement.Tests;

public class RolloutTests
{
    static Sample S(int[] ids, long version = 3) => new(string.Concat(ids.Select(i => (char)('a' + i % 26))), ids, ids.Select(i => -0.1f * i).ToArray(), FinishReason.Length, version);

    // Prompt "p<k>" tokenizes to k + 1 tokens: BOS (1) then k copies of 7.
    static int[] Tokenize(string prompt) => [1, .. Enumerable.Repeat(7, int.Parse(prompt[1..]))];

    [Fact]
    public void Rows_hold_prompt_then_completion_then_padding_with_masks_and_positions()
    {
        string[] prompts = ["p1", "p3"];
        Completion[] completions = [new(0, [S([10, 11, 12]), S([13])]), new(1, [S([14, 15]), S([16])])];
        using var r = Rollout.Create(prompts, completions, Tokenize, advantages: [1, 2, 3, 4], padId: 0);

        Assert.Equal(new long[] { 4, 7 }, r.InputIds.shape); // longest prompt 4 + longest completion 3
        Assert.Equal(new long[] { 4, 3 }, r.CompletionIds.shape);
        long[] expectedInput =
        [
            1, 7, 10, 11, 12, 0, 0,
            1, 7, 13, 0, 0, 0, 0,
            1, 7, 7, 7, 14, 15, 0,
            1, 7, 7, 7, 16, 0, 0,
        ];
        Assert.Equal(expectedInput, r.InputIds.data<long>().ToArray());
        Assert.Equal(new float[] { 1, 1, 0, 0, 0, 0, 0 }, r.PromptMask[0].data<float>().ToArray());
        Assert.Equal(new float[] { 1, 1, 1, 1, 0, 0, 0 }, r.PromptMask[2].data<float>().ToArray());
        Assert.Equal(new float[] { 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 0, 0 }, r.CompletionMask.data<float>().ToArray());
        Assert.Equal(new long[] { 10, 11, 12, 13, 0, 0, 14, 15, 0, 16, 0, 0 }, r.CompletionIds.data<long>().ToArray());
        // The logit at position t predicts token t + 1: completion token j of a prompt of length P is read at P - 1 + j.
        Assert.Equal(new long[] { 1, 2, 3 }, r.Positions[0].data<long>().ToArray());
        Assert.Equal(new long[] { 3, 4, 5 }, r.Positions[2].data<long>().ToArray());
        Assert.Equal(-1.1f, r.EngineLogProbs[0, 1].item<float>(), 5);
        Assert.Equal(0f, r.EngineLogProbs[1, 1].item<float>());
        Assert.Equal(new float[] { 1, 2, 3, 4 }, r.Advantages.data<float>().ToArray());
        Assert.Equal(new[] { 0, 0, 1, 1 }, r.PromptIndices);
        Assert.Equal(7, r.TotalCompletionTokens);
    }

    [Fact]
    public void Sharding_keeps_groups_whole_and_gives_every_rank_the_same_rows()
    {
        var prompts = Enumerable.Range(0, 6).Select(i => $"p{i % 3 + 1}").ToArray();
        var completions = prompts.Select((_, i) => new Completion(i, Enumerable.Range(0, 4).Select(s => S(Enumerable.Repeat(20 + i, s + 1).ToArray())).ToArray())).ToArray();
        var advantages = Enumerable.Range(0, 24).Select(i => (float)i).ToArray();
        var seen = new List<int>();
        for (int rank = 0; rank < 3; rank++)
        {
            using var shard = Rollout.Create(prompts, completions, Tokenize, advantages, rank, worldSize: 3);
            Assert.Equal(8, shard.Rows);
            Assert.Equal(60, shard.TotalCompletionTokens); // the whole rollout's: 6 prompts x (1+2+3+4)
            // Each prompt's 4 samples are together on this rank, in sample order, with their own advantages.
            var groups = shard.PromptIndices.Chunk(4).ToList();
            Assert.All(groups, g => Assert.True(g.All(p => p == g[0])));
            seen.AddRange(groups.Select(g => g[0]));
            var adv = shard.Advantages.data<float>().ToArray();
            Assert.Equal(Enumerable.Range(shard.PromptIndices[0] * 4, 8).Select(i => (float)i), adv);
            Assert.All(shard.PromptIndices.Zip(shard.CompletionIds.select(1, 0).data<long>().ToArray()), x => Assert.Equal(20 + x.First, x.Second));
        }
        Assert.Equal(Enumerable.Range(0, 6), seen);
        Assert.Contains("multiple of the world size", Assert.Throws<ArgumentException>(() => Rollout.Create(prompts[..5], completions[..5], Tokenize, advantages[..20], 0, 2)).Message);
    }

    [Fact]
    public void Mismatched_inputs_are_rejected_with_the_field_named()
    {
        Completion[] completions = [new(0, [S([1]), S([2])]), new(1, [S([3])])];
        Assert.Contains("same size", Assert.Throws<ArgumentException>(() => Rollout.Create(["p1", "p1"], completions, Tokenize, [0, 0, 0])).Message);
        Assert.Contains("advantages", Assert.Throws<ArgumentException>(() => Rollout.Create(["p1"], completions[..1], Tokenize, [0])).ParamName);
    }

    [Fact]
    public void Log_probs_from_one_padded_forward_equal_each_row_alone()
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 }, seed: 3);
        string[] prompts = ["p1", "p4"];
        Completion[] completions = [new(0, [S([40, 41, 42]), S([43])]), new(1, [S([44, 45]), S([46, 47, 48])])];
        using var rollout = Rollout.Create(prompts, completions, Tokenize, [0, 0, 0, 0]);
        using var _ = no_grad();
        var batched = PolicyLogProbs.Compute(model, rollout);

        int row = 0;
        foreach (var c in completions)
            foreach (var s in c.Samples)
            {
                var prompt = Tokenize(prompts[c.PromptIndex]);
                long[] ids = [.. prompt.Select(i => (long)i), .. s.TokenIds.Select(i => (long)i)];
                using var logits = model.forward(tensor(ids, [1, ids.Length]));
                using var logSoftmax = nn.functional.log_softmax(logits[0], -1);
                for (int j = 0; j < s.TokenIds.Count; j++)
                {
                    var expected = logSoftmax[prompt.Length - 1 + j, s.TokenIds[j]].item<float>();
                    Assert.Equal(expected, batched.LogProbs[row, j].item<float>(), tolerance: 1e-4);
                    using var p = logSoftmax[prompt.Length - 1 + j].exp();
                    var entropy = -(p * logSoftmax[prompt.Length - 1 + j]).sum().item<float>();
                    Assert.Equal(entropy, batched.Entropy[row, j].item<float>(), tolerance: 1e-4);
                }
                row++;
            }
    }

    [Fact]
    public void Rollout_tensors_outlive_the_callers_dispose_scope()
    {
        Rollout rollout;
        using (NewDisposeScope())
            rollout = Rollout.Create(["p1"], [new(0, [S([5]), S([6])])], Tokenize, [1, -1]);
        using (rollout)
        {
            Assert.False(rollout.InputIds.IsInvalid);
            Assert.Equal(new float[] { 1, -1 }, rollout.Advantages.data<float>().ToArray());
        }
    }
}
