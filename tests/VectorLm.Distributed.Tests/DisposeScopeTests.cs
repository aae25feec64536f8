using TorchSharp;
using VectorLm.Data;
using VectorLm.Hosting;
using VectorLm.Models;
using VectorLm.Reinforcement;
using VectorLm.Sampling;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>
/// Every public entry point that allocates, run the way TorchSharp recommends (a <c>DisposeScope</c> per step) at
/// world sizes 1 and 2: state the SDK keeps must survive the caller's scope, and no step may leave tensors behind.
/// </summary>
public class DisposeScopeTests
{
    static readonly Tokenizer Tok = Tokenizer.ByteLevel();
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 };

    static ShardedDataLoader Loader(TrainerContext ctx) => new(
        PackedDataset.FromExamples(ArithmeticTask.Generate(64, seed: 1, maxOperand: 9), Tok, 32),
        batchSize: 2, seed: 3, rank: ctx.Rank, worldSize: ctx.WorldSize);

    /// <summary>Runs <paramref name="body"/> on each rank with its context current, as generated code does.</summary>
    internal static void OnRanks(int worldSize, Action<TrainerContext> body)
    {
        if (worldSize == 1)
        {
            using var ctx = TrainerContext.SingleProcess();
            using var current = TrainerContextScope.Enter(ctx);
            body(ctx);
            return;
        }
        LocalGroup.Run(worldSize, ctx =>
        {
            using var current = TrainerContextScope.Enter(ctx);
            body(ctx);
        });
    }

    /// <summary>
    /// Runs <paramref name="step"/> inside a fresh <c>DisposeScope</c> each time; after a warm-up (lazily created
    /// state), further steps must leave the number of live tensors on this thread unchanged.
    /// </summary>
    internal static void ScopedStepsLeakNothing(Action<int> step, int warmup = 2, int measured = 4)
    {
        int i = 0;
        void Scoped()
        {
            using var scope = NewDisposeScope();
            step(i++);
        }
        for (int k = 0; k < warmup; k++) Scoped();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int k = 0; k < measured; k++) Scoped();
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.True(after == before, $"{after - before} tensors outlived {measured} scoped steps");
    }

    static byte[][] Snapshot(nn.Module model) => model.parameters().Select(p => p.detach().cpu().bytes.ToArray()).ToArray();

    static void AssertRanksEqual(byte[][][] perRank)
    {
        for (int r = 1; r < perRank.Length; r++)
            for (int i = 0; i < perRank[0].Length; i++)
                Assert.True(perRank[0][i].AsSpan().SequenceEqual(perRank[r][i]), $"rank {r} parameter {i} differs from rank 0's");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Trainer_Step(int worldSize)
    {
        var finals = new byte[worldSize][][];
        OnRanks(worldSize, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: 0);
            using var trainer = new Trainer(model, Loader(ctx), new TrainerOptions { WarmupSteps = 1, TotalSteps = 10 });
            ScopedStepsLeakNothing(_ => Assert.True(double.IsFinite(trainer.Step().Loss)));
            finals[ctx.Rank] = Snapshot(model);
        });
        AssertRanksEqual(finals);
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(1, false)]
    [InlineData(2, true)]
    [InlineData(2, false)]
    public void Intercepted_optimizer_step(int worldSize, bool moduleZeroGrad)
    {
        var finals = new byte[worldSize][][];
        OnRanks(worldSize, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: 0);
            using var optimizer = Optimizers.AdamW(model, 1e-3);
            var data = Loader(ctx);
            ScopedStepsLeakNothing(_ =>
            {
                var batch = data.Next();
                if (moduleZeroGrad) model.zero_grad(); else optimizer.zero_grad();
                model.Loss(batch.InputIds, batch.Labels).backward();
                CollectiveInterceptors.OptimizerStep(optimizer, null);
            });
            finals[ctx.Rank] = Snapshot(model);
        });
        AssertRanksEqual(finals);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Sampler_generate_and_weight_swap(int worldSize)
    {
        var texts = new string[worldSize][];
        var versions = new long[worldSize];
        OnRanks(worldSize, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: 0);
            using var optimizer = Optimizers.AdamW(model, 1e-2);
            var data = Loader(ctx);
            EngineOptions options = new() { ContextLength = 32, MaxSequences = 2, BatchTokens = 32, Threads = 1 };
            ISamplingEngine? engine = null;
            try
            {
                using (NewDisposeScope()) engine = ctx.CreateSampler(model, Tok, options); // parity gate runs a forward here
                var last = new List<string>();
                ScopedStepsLeakNothing(_ =>
                {
                    var batch = data.Next();
                    optimizer.zero_grad();
                    model.Loss(batch.InputIds, batch.Labels).backward();
                    CollectiveInterceptors.OptimizerStep(optimizer, null);
                    var completions = CollectiveInterceptors.Generate(engine, ["1+2=", "3+4="], SamplingParams.Greedy(3));
                    last = completions.Select(c => c.Samples[0].Text).ToList();
                });
                texts[ctx.Rank] = last.ToArray();
                versions[ctx.Rank] = engine.WeightVersion;
            }
            finally { engine?.Dispose(); }
        });
        Assert.All(versions, v => Assert.True(v >= 6, $"engine weight version {v}: the swaps did not happen"));
        for (int r = 1; r < worldSize; r++) Assert.Equal(texts[0], texts[r]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void KvCache_decode_with_a_scope_per_token(int worldSize)
    {
        OnRanks(worldSize, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: ctx.Rank);
            using var noGrad = no_grad();
            long[] ids = [1, 20, 21, 22, 23, 24, 25, 26, 27, 28];
            float[] full;
            using (NewDisposeScope())
            {
                var logits = model.forward(tensor(ids, [1, ids.Length]));
                full = logits[0].flatten().data<float>().ToArray();
            }
            using var cache = model.NewKvCache(1, 16);
            var stepwise = new List<float>();
            ScopedStepsLeakNothing(t =>
            {
                var logits = model.forward(tensor(new[] { ids[t] }, [1, 1]), cache);
                stepwise.AddRange(logits.flatten().data<float>().ToArray());
            }, warmup: 2, measured: ids.Length - 2);
            Assert.Equal(ids.Length, cache.Length);
            Assert.Equal(full.Length, stepwise.Count);
            for (int i = 0; i < full.Length; i++)
                Assert.True(Math.Abs(full[i] - stepwise[i]) < 1e-4, $"logit {i}: full {full[i]}, cached {stepwise[i]}");
        });
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Checkpoint_save_and_resume(int worldSize)
    {
        string root = Directory.CreateTempSubdirectory("vlm-scope").FullName;
        try
        {
            var lossesAfterResume = new double[worldSize][];
            var expected = new double[worldSize][];
            OnRanks(worldSize, ctx =>
            {
                var options = new TrainerOptions { WarmupSteps = 1, TotalSteps = 10 };
                using (var model = LlamaModel.Create(Config, seed: 0))
                using (var trainer = new Trainer(model, Loader(ctx), options))
                {
                    var losses = new List<double>();
                    ScopedStepsLeakNothing(i =>
                    {
                        losses.Add(trainer.Step().Loss);
                        if (i == 2) trainer.SaveCheckpoint(root);
                    });
                    expected[ctx.Rank] = losses.Skip(3).ToArray();
                }
                using (var model = LlamaModel.Create(Config, seed: 9))
                using (var trainer = new Trainer(model, Loader(ctx), options))
                {
                    using (NewDisposeScope()) Assert.True(trainer.Resume(root));
                    Assert.Equal(3, trainer.StepCount);
                    var losses = new List<double>();
                    ScopedStepsLeakNothing(_ => losses.Add(trainer.Step().Loss), warmup: 1, measured: 2);
                    lossesAfterResume[ctx.Rank] = losses.ToArray();
                }
            });
            for (int r = 0; r < worldSize; r++) Assert.Equal(expected[r], lossesAfterResume[r]);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Collectives_leave_no_tensors_behind_without_any_scope(int worldSize)
    {
        OnRanks(worldSize, ctx =>
        {
            using var half = ones(8, dtype: ScalarType.Float16);   // staged through float32
            using var wide = ones(4, 6);
            using var strided = wide.t();                           // staged through a contiguous copy
            void Round()
            {
                ctx.AllReduce(half);
                ctx.AllReduce(strided);
                ctx.Broadcast(strided);
                ctx.AllGather(half).Dispose();
                ctx.AllGather(strided).Dispose();
            }
            Round();
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (int i = 0; i < 3; i++) Round();
            long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Assert.True(after == before, $"{after - before} tensors outlived 3 rounds of collectives");
        });
    }

    [Fact]
    public void Replaced_gradients_are_disposed_at_once_without_any_scope()
    {
        // A loop that disposes what it creates and uses no scope: the reducer's own tensors (the gradient handles it
        // reads and replaces) must not be left to the finalizer, which runs on the GC's schedule, not the GPU's.
        OnRanks(2, ctx =>
        {
            using var model = nn.Linear(64, 64);
            using var optimizer = optim.SGD(model.parameters(), 0.01);
            using var x = ones(4, 64);
            void Step()
            {
                model.zero_grad(); // set to none: backward allocates fresh gradients that the step replaces
                using (var y = model.forward(x))
                using (var loss = y.sum())
                    loss.backward();
                CollectiveInterceptors.OptimizerStep(optimizer, null);
            }
            Step();
            Step();
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (int i = 0; i < 4; i++) Step();
            long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            Assert.True(after == before, $"{after - before} tensors outlived 4 steps without a scope");
        });
    }

    /// <summary>
    /// A GRPO step as samples/Grpo writes it (sample a group per prompt, score, build the rollout, policy loss, clipped
    /// step): the rollout, log-probs and loss are temporaries of the step, and the ranks must end with equal weights.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Grpo_step_with_a_scope_per_step(int worldSize)
    {
        const int group = 2;
        var finals = new byte[worldSize][][];
        var versions = new long[worldSize];
        OnRanks(worldSize, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: 0);
            using var optimizer = Optimizers.AdamW(model, 1e-2);
            EngineOptions options = new() { ContextLength = 32, MaxSequences = 4, BatchTokens = 64, Threads = 1 };
            IColocatedSampler? sampler = null;
            try
            {
                using (NewDisposeScope()) sampler = ctx.CreateSampler(model, Tok, options);
                string[] prompts = ["1+2=", "3+4=", "5+6=", "7+1="];
                ScopedStepsLeakNothing(step =>
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
            finals[ctx.Rank] = Snapshot(model);
        });
        Assert.All(versions, v => Assert.True(v >= 5, $"engine weight version {v}: the rollouts did not follow the steps"));
        AssertRanksEqual(finals);
    }
}
