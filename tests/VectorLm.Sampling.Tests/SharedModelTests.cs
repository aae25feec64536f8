using TorchSharp;
using VectorLm.Models;
using VectorLm.Tokenization;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>The engine on the foundation's LlamaModel and Tokenizer, through <see cref="SamplerExtensions.CreateSampler"/>.</summary>
public class SharedModelTests
{
    static readonly EngineOptions Small = new() { ContextLength = 64, MaxSequences = 4, BatchTokens = 64, Threads = 1 };

    [Theory]
    [InlineData(EngineWeightType.F32, SamplingBackend.LlamaCpp)]
    [InlineData(EngineWeightType.F16, SamplingBackend.LlamaCpp)]
    [InlineData(EngineWeightType.F32, SamplingBackend.Torch)]
    [InlineData(EngineWeightType.BF16, SamplingBackend.Torch)]
    [InlineData(EngineWeightType.F16, SamplingBackend.Torch)]
    public void CreateSampler_passes_the_parity_gate_on_the_tiny_model(EngineWeightType type, SamplingBackend backend)
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 3);
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, Tokenizer.ByteLevel(), Small with { WeightType = type, Backend = backend });
        Assert.IsType(backend == SamplingBackend.Torch ? typeof(TorchSamplingEngine) : typeof(LlamaSamplingEngine), engine);
        var report = engine.CheckParity();
        Assert.True(report.Relative <= (type == EngineWeightType.F32 ? 1e-3f : 5e-2f), report.ToString());
    }

    [Fact]
    public void Llama_cpp_tokenizes_like_the_shared_trained_tokenizer_on_random_text()
    {
        var corpus = Enumerable.Range(0, 200).Select(i => $"the cat sat on the mat {i} times; über naïve café — 猫は座った 🙂 {i * 7}").ToList();
        var tokenizer = Tokenizer.Train(corpus, 420);
        using var model = LlamaModel.Create(LlamaConfig.Tiny with { VocabSize = tokenizer.VocabSize }, seed: 4);
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { Backend = SamplingBackend.LlamaCpp, ParityCheck = ParityCheckMode.Never });
        var rng = new Random(77);
        string[] words = ["the", "cat", " sat", "on", "mat", "über", "naïve", "café", "—", "猫", "は", "座った", "🙂", " ", "  ", "\n", "tim", "es;", "0", "42", "Ж", "ß"];
        int multiPieceTexts = 0;
        for (int i = 0; i < 300; i++)
        {
            var text = string.Concat(Enumerable.Range(0, rng.Next(0, 12)).Select(_ => words[rng.Next(words.Length)]));
            var expected = tokenizer.Encode(text);
            Assert.Equal(expected, ((LlamaSamplingEngine)engine).TokenizeWithLlama(text));
            if (expected.Any(id => tokenizer.Types[id] == TokenType.Normal)) multiPieceTexts++;
        }
        Assert.True(multiPieceTexts > 100, "the random texts should exercise merged pieces, not only bytes");
    }

    [Theory]
    [InlineData(SamplingBackend.LlamaCpp)]
    [InlineData(SamplingBackend.Torch)]
    public void Greedy_generation_matches_the_models_own_greedy_decode(SamplingBackend backend)
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 5);
        var tokenizer = Tokenizer.ByteLevel();
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { WeightType = EngineWeightType.F32, Backend = backend });
        var prompt = "Hello, wörld";
        var sample = engine.Generate([prompt], SamplingParams.Greedy(10))[0].Samples[0];
        var ids = engine.TokenizePrompt(prompt).Select(i => (long)i).ToList();
        using var _ = torch.no_grad();
        for (int t = 0; t < 10; t++)
        {
            using var logits = model.forward(torch.tensor(ids.ToArray(), [1, ids.Count]));
            ids.Add(logits[0, -1].argmax().item<long>());
        }
        Assert.Equal(ids.Skip(ids.Count - 10).Select(i => (int)i), sample.TokenIds);
    }

    [Theory]
    [InlineData(SamplingBackend.LlamaCpp)]
    [InlineData(SamplingBackend.Torch)]
    public void An_optimizer_step_reaches_the_engine_and_the_swap_matches_a_fresh_sampler(SamplingBackend backend)
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 6);
        var tokenizer = Tokenizer.ByteLevel();
        var ctx = TrainerContext.SingleProcess();
        var options = Small with { Backend = backend };
        using var engine = ctx.CreateSampler(model, tokenizer, options);
        var before = engine.Generate(["abc"], SamplingParams.Greedy(8))[0].Samples[0];

        var optimizer = torch.optim.SGD(model.parameters(), 0.5);
        var input = torch.tensor(tokenizer.Encode("training text changes weights", addBos: true).Select(i => (long)i).ToArray()).unsqueeze(0);
        using (var loss = model.Loss(input, input)) loss.backward();
        using (VectorLm.Hosting.TrainerContextScope.Enter(ctx))
            VectorLm.Hosting.CollectiveInterceptors.OptimizerStep(optimizer, null);
        Assert.True(engine.IsStale);

        var after = engine.Generate(["abc"], SamplingParams.Greedy(8))[0].Samples[0];
        Assert.Equal(0, before.WeightVersion);
        Assert.Equal(1, after.WeightVersion);
        using var fresh = ctx.CreateSampler(model, tokenizer, options);
        var expected = fresh.Generate(["abc"], SamplingParams.Greedy(8))[0].Samples[0];
        Assert.Equal(expected.TokenIds, after.TokenIds);
        Assert.Equal(expected.LogProbs, after.LogProbs);
        Assert.NotEqual(before.LogProbs, after.LogProbs);
    }

    [Theory]
    [InlineData(SamplingBackend.LlamaCpp)]
    [InlineData(SamplingBackend.Torch)]
    public void Biases_and_rope_scaling_reach_the_engine(SamplingBackend backend)
    {
        var config = LlamaConfig.Tiny with { QkvBias = true, OutputBias = true, MlpBias = true, RopeScaling = new RopeScaling("linear", 2) };
        using var model = LlamaModel.Create(config, seed: 8);
        using (torch.no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith(".bias", StringComparison.Ordinal)) p.copy_(torch.randn(p.shape, generator: new torch.Generator(9)) * 0.5);
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, Tokenizer.ByteLevel(),
            Small with { WeightType = EngineWeightType.F32, Backend = backend, ParityTolerance = 1e-4f });   // the parity gate runs here
        Assert.True(engine.CheckParity().Relative <= 1e-4f);
        // The biases matter (the gate sees one change) and a swap carries them.
        using (torch.no_grad()) model.named_parameters().First(p => p.name.EndsWith("q_proj.bias", StringComparison.Ordinal)).parameter.zero_();
        Assert.Throws<WeightParityException>(() => engine.CheckParity());
        engine.ForceSync();
        Assert.True(engine.CheckParity().Relative <= 1e-4f);
    }

    [Fact]
    public void Auto_picks_torch_on_cuda_and_by_sequence_slots_on_the_cpu()
    {
        var cuda = new Device(DeviceType.CUDA, 0);
        const int threshold = SamplerExtensions.CpuTorchMinSequences;
        Assert.Equal(SamplingBackend.LlamaCpp, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU, 1));
        Assert.Equal(SamplingBackend.LlamaCpp, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU, threshold - 1));
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU, threshold));
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU, 4 * threshold));
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, cuda, 1));
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, cuda, threshold));
        // An explicit backend is kept whatever the device and slots.
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Torch, torch.CPU, 1));
        Assert.Equal(SamplingBackend.LlamaCpp, SamplerExtensions.ResolveBackend(SamplingBackend.LlamaCpp, torch.CPU, 4 * threshold));
        Assert.Equal(SamplingBackend.LlamaCpp, SamplerExtensions.ResolveBackend(SamplingBackend.LlamaCpp, cuda, threshold));
        // The default slots (32) are at or above the threshold: a default CPU sampler is the torch engine.
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU, new EngineOptions().MaxSequences));
    }

    [Fact]
    public void The_weight_type_defaults_per_engine_and_device()
    {
        var cuda = new Device(DeviceType.CUDA, 0);
        Assert.Equal(EngineWeightType.F16, SamplerExtensions.ResolveWeightType(null, SamplingBackend.LlamaCpp, torch.CPU));
        Assert.Equal(EngineWeightType.F16, SamplerExtensions.ResolveWeightType(null, SamplingBackend.LlamaCpp, cuda));
        Assert.Equal(EngineWeightType.F32, SamplerExtensions.ResolveWeightType(null, SamplingBackend.Torch, torch.CPU));
        Assert.Equal(EngineWeightType.BF16, SamplerExtensions.ResolveWeightType(null, SamplingBackend.Torch, cuda));
        foreach (var type in Enum.GetValues<EngineWeightType>())
        {
            Assert.Equal(type, SamplerExtensions.ResolveWeightType(type, SamplingBackend.LlamaCpp, torch.CPU));
            Assert.Equal(type, SamplerExtensions.ResolveWeightType(type, SamplingBackend.Torch, cuda));
        }
        var e = Assert.Throws<ArgumentException>(() => SamplerExtensions.ResolveWeightType(null, SamplingBackend.Auto, torch.CPU));
        Assert.Equal("engine", e.ParamName);
    }

    [Theory]
    [InlineData(SamplerExtensions.CpuTorchMinSequences - 1, typeof(LlamaSamplingEngine), EngineWeightType.F16, 5e-2f)]
    [InlineData(SamplerExtensions.CpuTorchMinSequences, typeof(TorchSamplingEngine), EngineWeightType.F32, 1e-3f)]
    public void A_default_cpu_sampler_is_built_by_its_slots_with_the_engines_weight_type_and_tolerance(int slots, Type engineType,
        EngineWeightType weightType, float tolerance)
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 7);
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, Tokenizer.ByteLevel(), Small with { MaxSequences = slots, BatchTokens = 64 });
        Assert.IsType(engineType, engine);
        Assert.Null(engine.Options.WeightType);   // the options stay as given; the engine reports what it resolved
        Assert.Equal(weightType, engine.WeightType);
        var report = engine.CheckParity();
        Assert.Equal(tolerance, report.Tolerance);
        Assert.True(report.Relative <= tolerance, report.ToString());
    }

    [Fact]
    public void The_parity_message_names_the_resolved_weight_type()
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 7);
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, Tokenizer.ByteLevel(),
            Small with { Backend = SamplingBackend.Torch, ParityCheck = ParityCheckMode.Never });
        using (torch.no_grad()) model.named_parameters().First(p => p.name.EndsWith("o_proj.weight", StringComparison.Ordinal)).parameter.mul_(3);
        var e = Assert.Throws<WeightParityException>(() => engine.CheckParity());
        Assert.Contains("tolerance 0.001 for F32 weights", e.Message);
    }
}
