using TorchSharp;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>A LoRA adapter in either engine: loaded once, updated in place (adapter bytes only), checked by the parity gate.</summary>
public class LoraEngineTests
{
    static readonly EngineOptions F32 = new() { WeightType = EngineWeightType.F32, ContextLength = 64, MaxSequences = 2, BatchTokens = 64, Threads = 1 };
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { TieWordEmbeddings = false };
    static readonly int[] Probe = [1, 20, 31, 45, 52, 77, 90, 101, 7, 3];

    // An adapter with random B, so it visibly changes the output (a fresh one, B = 0, would not).
    static LlamaModel AdaptedModel(LoraConfig lora, int seed = 1)
    {
        var m = LlamaModel.Create(Config, seed: seed);
        m.AddLora(lora);
        var g = new Generator((ulong)seed + 100);
        using (no_grad())
            foreach (var w in m.AdapterWeights())
                w.B.copy_(randn(w.B.shape, generator: g) * 0.05);
        m.eval();
        return m;
    }

    static float[] TrainerLogits(LlamaModel m)
    {
        using var _ = no_grad();
        using var ids = tensor(Probe.Select(i => (long)i).ToArray(), [1, Probe.Length]);
        return m.forward(ids).contiguous().data<float>().ToArray();
    }

    static float MaxRelativeDiff(float[] a, float[] b)
    {
        float diff = 0, scale = 0;
        for (int i = 0; i < a.Length; i++) { diff = Math.Max(diff, Math.Abs(a[i] - b[i])); scale = Math.Max(scale, Math.Abs(b[i])); }
        return diff / scale;
    }

    static string[] StagedFiles() => Directory.GetFiles(EngineLoraAdapter.StagingDirectory, $"vectorlm-lora-{Environment.ProcessId}-*");

    static ColocatedSampler Create(LlamaModel m, SamplingBackend backend, EngineOptions? options = null) =>
        (ColocatedSampler)TrainerContext.SingleProcess().CreateSampler(m, Tokenizer.ByteLevel(), (options ?? F32) with { Backend = backend });

    [Theory]
    [InlineData(false, 16, EngineWeightType.F32, SamplingBackend.LlamaCpp)]
    [InlineData(true, 1, EngineWeightType.F32, SamplingBackend.LlamaCpp)] // rsLoRA's alpha / sqrt(r) scale, and rank 1 (ggml sees A as a vector)
    [InlineData(false, 8, EngineWeightType.F16, SamplingBackend.LlamaCpp)] // the adapter in the engine's type
    [InlineData(false, 16, EngineWeightType.F32, SamplingBackend.Torch)]
    [InlineData(true, 1, EngineWeightType.F32, SamplingBackend.Torch)]
    [InlineData(false, 8, EngineWeightType.BF16, SamplingBackend.Torch)]
    public void Engine_applies_the_adapter_and_the_parity_gate_covers_base_plus_adapter(bool rsLora, int rank, EngineWeightType type, SamplingBackend backend)
    {
        using var m = AdaptedModel(new LoraConfig { R = rank, Alpha = 2 * rank, UseRsLora = rsLora });
        using var engine = Create(m, backend, F32 with { WeightType = type }); // gate runs at build
        float tolerance = type == EngineWeightType.F32 ? 1e-3f : 5e-2f;
        Assert.True(engine.CheckParity().Relative <= tolerance);
        Assert.True(engine.AdapterBytes > 0);
        Assert.Empty(StagedFiles()); // the one-time GGUF is gone

        var engineLogits = engine.EvaluateLogits(Probe);
        var trainerLogits = TrainerLogits(m);
        Assert.True(MaxRelativeDiff(engineLogits, trainerLogits) <= tolerance);
        Assert.Equal(type == EngineWeightType.F32 ? 4 : 2, (int)(engine.AdapterBytes / m.AdapterWeights().Sum(w => w.A.numel() + w.B.numel())));
        // The adapter matters: without it the base model's logits are far away.
        using var baseModel = LlamaModel.Create(Config, seed: 1);
        Assert.True(MaxRelativeDiff(TrainerLogits(baseModel), trainerLogits) > 4 * tolerance, "the adapter should change the logits");
    }

    [Theory]
    [InlineData(SamplingBackend.LlamaCpp)]
    [InlineData(SamplingBackend.Torch)]
    public void The_parity_gate_compares_without_dropout_and_leaves_the_model_training(SamplingBackend backend)
    {
        using var m = AdaptedModel(new LoraConfig { R = 4, Alpha = 8, Dropout = 0.5 });
        m.train();
        using var engine = Create(m, backend, F32 with { ParityCheck = ParityCheckMode.EverySync });
        Assert.True(engine.CheckParity().Relative <= 1e-3f);
        Assert.True(m.training);
    }

    [Theory]
    [InlineData(SamplingBackend.LlamaCpp)]
    [InlineData(SamplingBackend.Torch)]
    public void A_sync_after_a_step_writes_only_the_adapter_and_the_engine_follows_the_trainer(SamplingBackend backend)
    {
        using var m = AdaptedModel(new LoraConfig { R = 4, Alpha = 8 });
        using var engine = Create(m, backend);
        var baseBefore = m.BaseParameters().Select(p => p.parameter.detach().clone()).ToList();
        var before = engine.EvaluateLogits(Probe);
        long version = engine.WeightVersion;

        m.train();
        using var opt = Optimizers.AdamW(m, 5e-2);
        using var ids = tensor(Probe.Select(i => (long)i).ToArray(), [1, Probe.Length]);
        for (int step = 0; step < 2; step++)
        {
            opt.zero_grad();
            using var loss = m.Loss(ids.narrow(1, 0, Probe.Length - 1), ids.narrow(1, 1, Probe.Length - 1));
            loss.backward();
            opt.step();
        }
        m.eval();
        engine.MarkStale();
        engine.SyncWeights();

        Assert.Equal(version + 1, engine.WeightVersion);
        Assert.Equal(engine.AdapterBytes, engine.LastSyncBytes); // no base bytes: the base is frozen
        Assert.True(engine.AdapterBytes * 10 < engine.WeightBytes, $"adapter {engine.AdapterBytes} B, base {engine.WeightBytes} B");
        var after = engine.EvaluateLogits(Probe);
        Assert.True(MaxRelativeDiff(after, before) > 1e-3f, "the steps should have moved the engine's output");
        Assert.True(MaxRelativeDiff(after, TrainerLogits(m)) <= 1e-3f);
        Assert.True(engine.CheckParity().Relative <= 1e-3f);
        Assert.Empty(StagedFiles());
        // The base is untouched by the steps (frozen), so nothing but the adapter had to move.
        foreach (var (p, b) in m.BaseParameters().Zip(baseBefore)) Assert.True(p.parameter.equal(b).all().item<bool>(), p.name);
        foreach (var b in baseBefore) b.Dispose();
    }

    [Theory]
    [InlineData(SamplingBackend.LlamaCpp)]
    [InlineData(SamplingBackend.Torch)]
    public void Merging_loading_and_replacing_adapters_are_followed_without_a_step(SamplingBackend backend)
    {
        var dir = Directory.CreateTempSubdirectory("vlm-lora");
        try
        {
            using var m = AdaptedModel(new LoraConfig { R = 4, Alpha = 8, TargetModules = ["q_proj", "k_proj", "o_proj"] });
            m.SaveAdapter(Path.Combine(dir.FullName, "a"));
            using var engine = Create(m, backend);
            var adapted = engine.EvaluateLogits(Probe);

            // Merge: the adapter leaves the engine and the base is copied in full (or, torch engine, read in place where it can).
            m.MergeAdapter();
            var merged = engine.EvaluateLogits(Probe);
            Assert.Equal(0, engine.AdapterBytes);
            long aliased = (engine as TorchSamplingEngine)?.AliasedBytes ?? 0;
            Assert.Equal(engine.WeightBytes, engine.LastSyncBytes + aliased);
            Assert.True(MaxRelativeDiff(merged, adapted) <= 1e-3f);
            Assert.True(MaxRelativeDiff(merged, TrainerLogits(m)) <= 1e-3f);

            // A new adapter of another rank and other targets is loaded (once) into the engine.
            m.AddLora(new LoraConfig { R = 2, Alpha = 4, TargetModules = ["v_proj", "gate_proj", "down_proj"] });
            using (no_grad()) foreach (var w in m.AdapterWeights()) w.B.fill_(0.02);
            var fresh = engine.EvaluateLogits(Probe);
            Assert.True(MaxRelativeDiff(fresh, merged) > 1e-3f);
            Assert.True(MaxRelativeDiff(fresh, TrainerLogits(m)) <= 1e-3f);
            // With an adapter the torch engine reads nothing in place: what it did is copied in now.
            Assert.Equal(engine.AdapterBytes + aliased, engine.LastSyncBytes);
            Assert.Equal(0, (engine as TorchSamplingEngine)?.AliasedBytes ?? 0);

            // Loading a saved adapter into a base model: the engine follows.
            using var other = LlamaModel.Create(Config, seed: 1);
            using var otherEngine = Create(other, backend);
            other.LoadAdapter(Path.Combine(dir.FullName, "a"));
            other.eval();
            Assert.True(MaxRelativeDiff(otherEngine.EvaluateLogits(Probe), adapted) <= 1e-3f);
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void The_torch_engine_refuses_an_adapter_it_cannot_apply_by_name()
    {
        using var m = AdaptedModel(new LoraConfig { R = 2 });
        // Adapters on only some layers (not what AddLora makes, but a LoraWeights list can say so) are refused, naming the module.
        var partial = m.AdapterWeights().Where(w => !w.Module.StartsWith("model.layers.1.", StringComparison.Ordinal)).ToList();
        var arch = SamplerExtensions.Architecture(Config);
        var e = Assert.Throws<NotSupportedException>(() => TorchLoraAdapter.Create(arch, CPU, ScalarType.Float32, partial).Dispose());
        Assert.Contains("model.layers.1.", e.Message);
    }
}
