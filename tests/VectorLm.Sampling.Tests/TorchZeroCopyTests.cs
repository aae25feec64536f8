using TorchSharp;
using VectorLm.Models;
using VectorLm.Tokenization;
using static TorchSharp.torch;
using static VectorLm.Sampling.Tests.TorchSwapTests;   // the same engine options, model config, probe, flat optimizer and step

namespace VectorLm.Sampling.Tests;

/// <summary>
/// The torch engine reading the trainer's weights in place: when the engine's dtype is the trainer's and a kind of
/// weight matrix lies in one buffer (FlatAdamW, flattened on the CPU here as on CUDA), a swap copies only the norm
/// vectors, and the engine must still decode exactly as a copying engine, follow re-pointed parameters, and never
/// read the trainer's weights while an adapter is present.
/// </summary>
public class TorchZeroCopyTests
{
    static readonly string[] Prompts = ["abc", "hello there", "ü"];

    // Bytes of the weight matrices (embed, head, q/k/v, o, gate/up, down) in f32: what the engine reads in place.
    static long MatrixBytes(LlamaConfig c)
    {
        long h = c.HiddenSize, q = c.NumAttentionHeads * c.HeadDim, kv = c.NumKeyValueHeads * c.HeadDim, f = c.IntermediateSize;
        return 4 * (2 * c.VocabSize * h + c.NumHiddenLayers * ((q + 2 * kv) * h + h * q + 3 * f * h));
    }

    static void AssertClose(float[] expected, float[] actual, string what)
    {
        float scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-4f * scale, $"{what}, logit {i}: {actual[i]} vs {expected[i]}");
    }

    static int[][] Tokens(IReadOnlyList<Completion> completions) => completions.Select(c => c.Samples[0].TokenIds.ToArray()).ToArray();

    [Fact]
    public void Matrices_in_a_flat_buffer_are_read_in_place_and_decode_exactly_as_a_copying_engine_after_every_step()
    {
        using var m = LlamaModel.Create(Config, seed: 11);
        var ctx = TrainerContext.SingleProcess();
        using var aliased = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32);
        using var copying = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32);
        copying.AliasTrainerWeights = false;
        using var opt = FlatOptimizer(m, lr: 5e-2);   // re-points the parameters into flat buffers
        var greedy = SamplingParams.Greedy(6);
        var sampled = new SamplingParams { Temperature = 1f, TopP = 0.9f, MaxNewTokens = 6, Seed = 3 };
        float[]? previous = null;
        for (int step = 0; step < 3; step++)
        {
            m.train();
            Step(m, opt);
            m.eval();
            ctx.NotifyWeightsChanged();
            Assert.True(aliased.IsStale);
            long version = aliased.WeightVersion;
            var inPlace = aliased.EvaluateLogits(Probe);
            Assert.Equal(version + 1, aliased.WeightVersion);
            Assert.Equal(3, aliased.LastSyncCopyKernels);   // the final, input and post-attention norms; no matrix
            Assert.Equal(MatrixBytes(Config), aliased.AliasedBytes);
            Assert.Equal(aliased.WeightBytes - aliased.AliasedBytes, aliased.LastSyncBytes);
            Assert.Equal(aliased.WeightBytes - aliased.AliasedBytes, aliased.StoredWeightBytes);   // no copy kept of the matrices

            var copied = copying.EvaluateLogits(Probe);
            Assert.Equal(9, copying.LastSyncCopyKernels);
            Assert.Equal(0, copying.AliasedBytes);
            Assert.Equal(copied, inPlace);
            AssertClose(TorchSwapTests.TrainerLogits(m), inPlace, $"step {step}");
            if (previous is not null) Assert.True(inPlace.Zip(previous).Max(x => Math.Abs(x.First - x.Second)) > 1e-3f, "the step should move the logits");
            previous = inPlace;

            Assert.Equal(Tokens(copying.Generate(Prompts, greedy)), Tokens(aliased.Generate(Prompts, greedy)));
            Assert.Equal(Tokens(copying.Generate(Prompts, sampled)), Tokens(aliased.Generate(Prompts, sampled)));
            Assert.All(aliased.Generate(Prompts, greedy), c => Assert.Equal(aliased.WeightVersion, c.Samples[0].WeightVersion));
        }
    }

    [Fact]
    public void Re_pointed_parameters_are_followed_and_ones_that_no_longer_share_a_buffer_are_copied()
    {
        using var m = LlamaModel.Create(Config, seed: 12);
        using var engine = (TorchSamplingEngine)TrainerContext.SingleProcess().CreateSampler(m, Tokenizer.ByteLevel(), F32);
        // Created before any optimizer: the parameters are separate tensors, so only the embedding and the head (one
        // contiguous tensor each) are read in place; the rest is copied, tensor by tensor.
        long embedAndHead = 4L * 2 * Config.VocabSize * Config.HiddenSize;
        Assert.Equal(embedAndHead, engine.AliasedBytes);

        using (var first = FlatOptimizer(m))
        {
            Step(m, first);
            m.eval();
            engine.MarkStale();
            AssertClose(TorchSwapTests.TrainerLogits(m), engine.EvaluateLogits(Probe), "first optimizer");
            Assert.Equal(MatrixBytes(Config), engine.AliasedBytes);
        }

        // A second optimizer re-points every parameter into new buffers: the engine reads those, not the first ones
        // (which the engine would otherwise keep alive and read, with the values before this step).
        using var second = FlatOptimizer(m);
        m.train();
        Step(m, second);
        m.eval();
        engine.MarkStale();
        AssertClose(TorchSwapTests.TrainerLogits(m), engine.EvaluateLogits(Probe), "second optimizer");
        Assert.Equal(MatrixBytes(Config), engine.AliasedBytes);
        Assert.Equal(3, engine.LastSyncCopyKernels);

        // Each parameter re-pointed at a copy of its own (no longer one buffer), then changed: the stacked blocks go
        // back to the engine's own storage, copied tensor by tensor; the embedding and the head are still read in place.
        using (no_grad())
        {
            var g = new Generator(5);
            foreach (var p in m.parameters())
            {
                using var own = p.detach().clone();
                p.set_(own);
                using var noise = randn(p.shape, generator: g);
                p.add_(noise.mul_(0.02));
            }
        }
        engine.MarkStale();
        AssertClose(TorchSwapTests.TrainerLogits(m), engine.EvaluateLogits(Probe), "separate tensors");
        Assert.Equal(embedAndHead, engine.AliasedBytes);
        Assert.Equal(1 + 9 * Config.NumHiddenLayers, engine.LastSyncCopyKernels);   // final norm, then 9 tensors per layer
        Assert.Equal(engine.WeightBytes - embedAndHead, engine.StoredWeightBytes);
    }

    [Fact]
    public void With_an_adapter_nothing_is_read_in_place_and_a_merged_sync_leaves_the_trainer_weights_unchanged()
    {
        using var m = LlamaModel.Create(Config, seed: 13);
        m.AddLora(new LoraConfig { R = 4, Alpha = 8 });
        // The base trains too, so it lies in the optimizer's flat buffers, in the engine's dtype: readable in place.
        foreach (var (_, p) in m.BaseParameters()) p.requires_grad = true;
        var ctx = TrainerContext.SingleProcess();
        using var merged = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32 with { MergeLoraOnSync = true });
        using var applied = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), F32);
        Assert.Equal(0, merged.AliasedBytes);
        Assert.Equal(0, applied.AliasedBytes);
        using var opt = FlatOptimizer(m, lr: 5e-2);
        for (int step = 0; step < 2; step++)
        {
            m.train();
            Step(m, opt);
            m.eval();
            ctx.NotifyWeightsChanged();
            var before = m.BaseParameters().Select(p => p.parameter.detach().clone()).ToArray();
            try
            {
                merged.SyncWeights();
                applied.SyncWeights();
                foreach (var ((name, p), b) in m.BaseParameters().Zip(before)) Assert.True(p.equal(b).all().item<bool>(), $"step {step}: {name} changed by a sync");
            }
            finally
            {
                foreach (var b in before) b.Dispose();
            }
            Assert.Equal(0, merged.AliasedBytes);
            Assert.Equal(0, applied.AliasedBytes);
            Assert.Equal(merged.WeightBytes + merged.AdapterBytes, merged.LastSyncBytes);
            var trainer = TorchSwapTests.TrainerLogits(m);
            AssertClose(trainer, merged.EvaluateLogits(Probe), $"merged, step {step}");
            AssertClose(trainer, applied.EvaluateLogits(Probe), $"applied, step {step}");
        }

        // The adapter merged into the trainer's base: without an adapter, the engines read the base in place again.
        m.MergeAdapter();
        var expected = TorchSwapTests.TrainerLogits(m);
        AssertClose(expected, merged.EvaluateLogits(Probe), "after the trainer's merge");
        Assert.Equal(0, merged.AdapterBytes);
        Assert.True(merged.AliasedBytes > 0);
    }

    [Fact]
    public void Only_weights_in_the_engine_dtype_are_read_in_place()
    {
        var bf16 = F32 with { WeightType = EngineWeightType.BF16 };
        var ctx = TrainerContext.SingleProcess();
        // f32 masters (bf16-mixed) into a bf16 engine: a casting copy per block.
        using (var m = LlamaModel.Create(Config, seed: 14))
        using (var engine = (TorchSamplingEngine)ctx.CreateSampler(m, Tokenizer.ByteLevel(), bf16))
        using (var opt = FlatOptimizer(m))
        {
            engine.ForceSync();
            Assert.Equal(0, engine.AliasedBytes);
            Assert.Equal(9, engine.LastSyncCopyKernels);
        }

        // bf16 parameters (bf16-true) into a bf16 engine: read in place, decoding as a copying bf16 engine does.
        using var t = LlamaModel.Create(Config, seed: 14);
        t.to(ScalarType.BFloat16);
        using var aliased = (TorchSamplingEngine)ctx.CreateSampler(t, Tokenizer.ByteLevel(), bf16);
        using var copying = (TorchSamplingEngine)ctx.CreateSampler(t, Tokenizer.ByteLevel(), bf16);
        copying.AliasTrainerWeights = false;
        using var trueOpt = FlatOptimizer(t);
        Step(t, trueOpt);
        t.eval();
        ctx.NotifyWeightsChanged();
        var inPlace = aliased.EvaluateLogits(Probe);
        Assert.Equal(MatrixBytes(Config) / 2, aliased.AliasedBytes);
        Assert.Equal(3, aliased.LastSyncCopyKernels);
        Assert.Equal(copying.EvaluateLogits(Probe), inPlace);
        Assert.True(aliased.CheckParity().Relative <= 5e-2f);
    }
}
