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
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { ParityCheck = ParityCheckMode.Never });
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
    public void Auto_picks_llama_cpp_on_the_cpu_and_torch_on_cuda()
    {
        Assert.Equal(SamplingBackend.LlamaCpp, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU));
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Auto, new Device(DeviceType.CUDA, 0)));
        Assert.Equal(SamplingBackend.Torch, SamplerExtensions.ResolveBackend(SamplingBackend.Torch, torch.CPU));
        Assert.Equal(SamplingBackend.LlamaCpp, SamplerExtensions.ResolveBackend(SamplingBackend.LlamaCpp, new Device(DeviceType.CUDA, 0)));
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 7);
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, Tokenizer.ByteLevel(), Small with { ParityCheck = ParityCheckMode.Never });
        Assert.IsType<LlamaSamplingEngine>(engine);
    }
}
