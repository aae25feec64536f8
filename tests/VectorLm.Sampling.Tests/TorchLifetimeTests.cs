using VectorLm.Models;
using VectorLm.Tokenization;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>
/// The torch engine in a training loop whose every step runs inside a DisposeScope, at world size 2: the engine is
/// built, generates and swaps (full weights, or only a LoRA adapter) inside scopes, and nothing it keeps may die with
/// them.
/// </summary>
public class TorchLifetimeTests
{
    static readonly string[] Prompts = ["alpha", "beta gamma", "δέλτα"];
    static readonly EngineOptions Options = new() { Backend = SamplingBackend.Torch, WeightType = EngineWeightType.F32, ContextLength = 48, MaxSequences = 2 };

    sealed record RankResult(int[][][] Tokens, long Version, long LastSyncBytes, long AdapterBytes, float MaxLogitDiff, int CopyKernels, long AliasedBytes);

    static RankResult Train(TrainerContext ctx, bool lora)
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 42);
        if (lora) model.AddLora(new LoraConfig { R = 4, Alpha = 8 });
        ColocatedSampler engine;
        using (NewDisposeScope()) engine = (ColocatedSampler)ctx.CreateSampler(model, Tokenizer.ByteLevel(), Options);
        using var _ = engine;
        // Flat buffers even on the CPU, as on CUDA: the swap then reads through strided views it keeps between steps.
        using var optimizer = TorchSwapTests.FlatOptimizer(model, lr: 5e-2);
        var tokens = new List<int[][]>();
        for (int step = 0; step < 3; step++)
        {
            using var scope = NewDisposeScope();
            var completions = engine.Generate(Prompts, SamplingParams.Greedy(4));   // syncs the step before's weights
            tokens.Add(completions.SelectMany(c => c.Samples.Select(s => s.TokenIds.ToArray())).ToArray());
            // Train on the prompt and its completion (the same data on both ranks, so the same update).
            var ids = Prompts.Zip(completions, (p, c) => engine.TokenizePrompt(p).Concat(c.Samples[0].TokenIds).ToArray()).ToList();
            int length = ids.Min(x => x.Length);
            var batch = tensor(ids.SelectMany(x => x.Take(length)).Select(x => (long)x).ToArray(), [ids.Count, length]);
            optimizer.zero_grad();
            model.Loss(batch.narrow(1, 0, length - 1).contiguous(), batch.narrow(1, 1, length - 1).contiguous()).backward();
            optimizer.step();
            ctx.NotifyWeightsChanged();
        }
        model.eval();
        var probe = new[] { 1, 20, 31, 45, 52, 77 };
        var engineLogits = engine.EvaluateLogits(probe);   // the last step's weights, synced inside no scope of ours
        float[] trainerLogits;
        using (no_grad())
        using (var ids = tensor(probe.Select(i => (long)i).ToArray(), [1, probe.Length]))
            trainerLogits = model.forward(ids).contiguous().data<float>().ToArray();
        float diff = engineLogits.Zip(trainerLogits).Max(x => Math.Abs(x.First - x.Second));
        return new RankResult(tokens.ToArray(), engine.WeightVersion, engine.LastSyncBytes, engine.AdapterBytes, diff, ((TorchSamplingEngine)engine).LastSyncCopyKernels,
            ((TorchSamplingEngine)engine).AliasedBytes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Generate_and_swap_inside_per_step_dispose_scopes_at_world_size_2(bool lora)
    {
        var ranks = DistributedGenerateTests.RunRanks(2, ctx => Train(ctx, lora));
        foreach (var r in ranks)
        {
            Assert.Equal(3, r.Version);   // three steps, three syncs (two before generates, one before the probe)
            Assert.True(r.MaxLogitDiff <= 1e-4f, $"engine logits differ from the trainer's by {r.MaxLogitDiff}");
            if (lora) Assert.Equal(r.AdapterBytes, r.LastSyncBytes);   // the adapter only: the base is frozen
            else Assert.Equal(0, r.AdapterBytes);
            // With an adapter, one copy per adapter matrix kind through the kept strided views; without, the matrices are
            // read in place from the optimizer's buffer (views kept across the scopes) and only the three norm blocks are copied.
            Assert.Equal(lora ? 2 * 7 : 3, r.CopyKernels);
            if (lora) Assert.Equal(0, r.AliasedBytes);
            else Assert.True(r.AliasedBytes > 0);
        }
        Assert.Equal(ranks[0].Tokens, ranks[1].Tokens);
    }
}
