using TorchSharp;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>
/// The torch engine's swap when it copies (reading in place is off here, see TorchZeroCopyTests): one copy per weight
/// block when the trainer's parameters live in a flat optimizer buffer (FlatAdamW, flattened on the CPU here as on
/// CUDA), one per tensor otherwise, with the same result either way.
/// </summary>
public class TorchSwapTests
{
    internal static readonly EngineOptions F32 = new() { Backend = SamplingBackend.Torch, WeightType = EngineWeightType.F32, ContextLength = 64, MaxSequences = 2 };
    internal static readonly LlamaConfig Config = LlamaConfig.Tiny with { TieWordEmbeddings = false, NumHiddenLayers = 3 };
    internal static readonly int[] Probe = [1, 20, 31, 45, 52, 77, 90, 101, 7, 3];

    // Optimizers.AdamW's two groups (decayed matrices, undecayed vectors), flattened even on the CPU.
    internal static FlatAdamW FlatOptimizer(LlamaModel m, double lr = 1e-2)
    {
        var named = m.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var groups = new[] { named.Where(p => Optimizers.Decays(p.name, p.parameter)), named.Where(p => !Optimizers.Decays(p.name, p.parameter)) }
            .Select(g => g.Select(p => p.parameter).ToList()).Where(g => g.Count > 0)
            .Select(g => new TorchSharp.Modules.AdamW.ParamGroup(g, lr, 0.9, 0.95, 1e-8, 0.0, false, false)).ToList();
        var opt = new FlatAdamW(groups, lr, 0.9, 0.95, 1e-8, 0.0, flattenCpuGroups: true);
        Assert.True(opt.IsFlat);
        return opt;
    }

    internal static void Step(LlamaModel m, optim.Optimizer opt)
    {
        using var scope = NewDisposeScope();
        using var ids = tensor(Probe.Select(i => (long)i).ToArray(), [1, Probe.Length]);
        opt.zero_grad();
        m.Loss(ids.narrow(1, 0, Probe.Length - 1), ids.narrow(1, 1, Probe.Length - 1)).backward();
        opt.step();
    }

    internal static float[] TrainerLogits(LlamaModel m)
    {
        using var _ = no_grad();
        using var ids = tensor(Probe.Select(i => (long)i).ToArray(), [1, Probe.Length]);
        return m.forward(ids).contiguous().data<float>().ToArray();
    }

    [Fact]
    public void Parameters_in_a_flat_buffer_swap_with_one_copy_per_block_and_equal_the_per_tensor_copy()
    {
        using var m = LlamaModel.Create(Config, seed: 4);
        var ctx = TrainerContext.SingleProcess();
        using var engine = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32);
        engine.AliasTrainerWeights = false;
        engine.ForceSync();
        Assert.Equal(0, engine.AliasedBytes);
        // Separate parameters: one copy per tensor (q, k and v, gate and up are separate tensors).
        int perTensor = 2 + 1 + Config.NumHiddenLayers * 9;
        Assert.Equal(perTensor, engine.LastSyncCopyKernels);

        using var opt = FlatOptimizer(m);   // re-points every parameter into the optimizer's flat buffers
        Step(m, opt);
        m.eval();
        long version = engine.WeightVersion;
        engine.MarkStale();
        var stacked = engine.EvaluateLogits(Probe);
        // embed, lm_head, final norm, then per kind over all layers: q+k+v, o, gate+up, down, two norms.
        Assert.Equal(9, engine.LastSyncCopyKernels);
        Assert.Equal(version + 1, engine.WeightVersion);

        // The same weights copied tensor by tensor (a fresh engine over clones, which share no buffer) give the same logits.
        var clones = m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());
        try
        {
            using var fresh = TorchSamplingEngine.Create(ctx, SamplerExtensions.Architecture(Config), () => clones, new TokenizerCodec(Tokenizer.ByteLevel()), options: F32);
            Assert.Equal(fresh.EvaluateLogits(Probe), stacked);
        }
        finally
        {
            foreach (var t in clones.Values) t.Dispose();
        }
        var trainer = TrainerLogits(m);
        for (int i = 0; i < trainer.Length; i++) Assert.True(Math.Abs(trainer[i] - stacked[i]) <= 1e-4f, $"logit {i}: {stacked[i]} vs {trainer[i]}");

        // A second optimizer re-points the parameters into new buffers: the engine follows them, not the old buffer.
        using var second = FlatOptimizer(m);
        Step(m, second);
        m.eval();
        engine.MarkStale();
        var moved = engine.EvaluateLogits(Probe);
        Assert.Equal(9, engine.LastSyncCopyKernels);
        var after = TrainerLogits(m);
        Assert.True(after.Zip(trainer).Max(x => Math.Abs(x.First - x.Second)) > 1e-3f, "the step should move the logits");
        for (int i = 0; i < after.Length; i++) Assert.True(Math.Abs(after[i] - moved[i]) <= 1e-4f, $"logit {i}: {moved[i]} vs {after[i]}");
    }

    [Fact]
    public void An_adapter_in_a_flat_buffer_syncs_with_one_copy_per_adapter_matrix_kind_and_follows_the_steps()
    {
        using var m = LlamaModel.Create(Config, seed: 5);
        m.AddLora(new LoraConfig { R = 4, Alpha = 8 });
        using var engine = (TorchSamplingEngine)TrainerContext.SingleProcess().CreateSampler(m, Tokenizer.ByteLevel(), F32);
        using var opt = FlatOptimizer(m, lr: 5e-2);
        for (int i = 0; i < 2; i++) Step(m, opt);
        m.eval();
        engine.MarkStale();
        var logits = engine.EvaluateLogits(Probe);
        Assert.Equal(2 * 7, engine.LastSyncCopyKernels);   // A and B of each of the seven projections, all layers at once
        Assert.Equal(engine.AdapterBytes, engine.LastSyncBytes);
        var trainer = TrainerLogits(m);
        float scale = trainer.Max(Math.Abs);
        for (int i = 0; i < trainer.Length; i++) Assert.True(Math.Abs(trainer[i] - logits[i]) <= 1e-4f * scale, $"logit {i}: {logits[i]} vs {trainer[i]}");
    }

    [Fact]
    public void A_merged_adapter_is_folded_into_a_fresh_base_copy_at_every_sync_and_follows_the_trainer()
    {
        using var m = LlamaModel.Create(Config, seed: 6);
        m.AddLora(new LoraConfig { R = 4, Alpha = 8, TargetModules = ["q_proj", "k_proj", "o_proj", "up_proj", "down_proj"] });
        var ctx = TrainerContext.SingleProcess();
        using var merged = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32 with { MergeLoraOnSync = true });   // gate at build
        using var applied = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32);
        Assert.True(merged.MergesAdapter);
        Assert.False(applied.MergesAdapter);   // the default on the CPU
        using var opt = FlatOptimizer(m, lr: 5e-2);
        for (int step = 0; step < 3; step++)
        {
            Step(m, opt);
            m.eval();
            merged.MarkStale();
            applied.MarkStale();
            var logits = merged.EvaluateLogits(Probe);
            // Each sync copies the base in again (the previous merge cannot be taken out exactly) plus the adapter.
            Assert.Equal(merged.WeightBytes + merged.AdapterBytes, merged.LastSyncBytes);
            var trainer = TrainerLogits(m);
            float scale = trainer.Max(Math.Abs);
            for (int i = 0; i < trainer.Length; i++) Assert.True(Math.Abs(trainer[i] - logits[i]) <= 1e-4f * scale, $"step {step}, logit {i}: {logits[i]} vs {trainer[i]}");
            m.train();
        }
        m.eval();
        Assert.True(merged.CheckParity().Relative <= 1e-3f);
        var p = SamplingParams.Greedy(6);
        Assert.Equal(applied.Generate(["abc", "hello"], p).Select(c => c.Samples[0].TokenIds.ToArray()),
            merged.Generate(["abc", "hello"], p).Select(c => c.Samples[0].TokenIds.ToArray()));

        // Merged into the trainer's base: the engine drops its adapter and copies the merged base.
        m.MergeAdapter();
        var afterMerge = merged.EvaluateLogits(Probe);
        Assert.Equal(0, merged.AdapterBytes);
        var expected = TrainerLogits(m);
        float s = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - afterMerge[i]) <= 1e-4f * s);
    }
}
