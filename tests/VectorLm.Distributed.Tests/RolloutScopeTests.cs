using VectorLm.Hosting;
using VectorLm.Models;
using VectorLm.Reinforcement;
using VectorLm.Sampling;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>
/// A GRPO step as samples/Grpo writes it (sample a group per prompt, score, build the rollout, policy loss, clipped
/// step), with a <c>DisposeScope</c> per step at world sizes 1 and 2: the rollout, log-probs and loss are temporaries of
/// the step, and nothing may outlive it; the ranks must end with equal weights.
/// </summary>
public class RolloutScopeTests
{
    static readonly Tokenizer Tok = Tokenizer.ByteLevel();
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 };

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Grpo_step_with_a_scope_per_step(int worldSize)
    {
        const int group = 2;
        var finals = new byte[worldSize][][];
        var versions = new long[worldSize];
        DisposeScopeTests.OnRanks(worldSize, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: 0);
            using var optimizer = Optimizers.AdamW(model, 1e-2);
            EngineOptions options = new() { ContextLength = 32, MaxSequences = 4, BatchTokens = 64, Threads = 1 };
            IColocatedSampler? sampler = null;
            try
            {
                using (NewDisposeScope()) sampler = ctx.CreateSampler(model, Tok, options);
                string[] prompts = ["1+2=", "3+4=", "5+6=", "7+1="];
                DisposeScopeTests.ScopedStepsLeakNothing(step =>
                {
                    var completions = CollectiveInterceptors.Generate(sampler, prompts,
                        new SamplingParams { Temperature = 1, MaxNewTokens = 4, N = group, Seed = (ulong)step + 1 });
                    // A reward that varies within groups, so the advantages (and the gradient) are not zero.
                    var rewards = completions.SelectMany(c => c.Samples).Select(s => (float)s.TokenIds.Count(t => t % 2 == 0)).ToArray();
                    var advantages = Advantages.GroupNormalized(rewards, group);
                    using var rollout = Rollout.Create(prompts, completions, sampler.TokenizePrompt, advantages, ctx.Rank, ctx.WorldSize, ctx.Device);
                    optimizer.zero_grad();
                    var policy = PolicyLogProbs.Compute(model, rollout);
                    var result = PolicyLoss.Compute(rollout, policy, new PolicyLossOptions());
                    result.Loss.backward();
                    CollectiveInterceptors.ClipGradNorm(model.parameters(), 1.0);
                    CollectiveInterceptors.OptimizerStep(optimizer, null);
                    var statistics = PolicyStatistics.FromTensor(ctx.AllReduce(result.Statistics, ReduceOp.Avg));
                    Assert.True(double.IsFinite(statistics.Loss));
                });
                versions[ctx.Rank] = sampler.WeightVersion;
            }
            finally { sampler?.Dispose(); }
            finals[ctx.Rank] = model.parameters().Select(p => p.detach().cpu().bytes.ToArray()).ToArray();
        });
        Assert.All(versions, v => Assert.True(v >= 5, $"engine weight version {v}: the rollouts did not follow the steps"));
        for (int r = 1; r < worldSize; r++)
            for (int i = 0; i < finals[0].Length; i++)
                Assert.True(finals[0][i].AsSpan().SequenceEqual(finals[r][i]), $"rank {r} parameter {i} differs from rank 0's");
    }
}
