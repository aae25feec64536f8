using TorchSharp;
using VectorLm.Models;
using VectorLm.Tokenization;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>
/// Both engines on checkpoints and tokenizers saved by transformers (tests/fixtures/hf/models): GGUF vocabulary
/// from the Hugging Face tokenizer (gpt2 with merges and pre-tokenizer, or llama), q/k/v/o and MLP biases, llama3 and
/// linear RoPE as rope_freqs factors, yarn as llama.cpp's YaRN.
/// </summary>
public class HfModelEngineTests
{
    static readonly EngineOptions Small = new() { ContextLength = 128, MaxSequences = 2, BatchTokens = 128, Threads = 1, WeightType = EngineWeightType.F32 };

    public static TheoryData<string, SamplingBackend> Models()
    {
        var data = new TheoryData<string, SamplingBackend>();
        foreach (var backend in new[] { SamplingBackend.LlamaCpp, SamplingBackend.Torch })
            foreach (var name in new[] { "llama3_tied", "qwen2_bias", "llama_yarn_bias", "mistral_linear" })
                data.Add(name, backend);
        return data;
    }

    static string Folder(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures", "hf", "models", name);
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/fixtures/hf/models/{name} not found above {AppContext.BaseDirectory}");
    }

    [Theory, MemberData(nameof(Models))]
    public void Parity_gate_passes_and_greedy_generation_equals_argmax_decode_with_forward(string name, SamplingBackend backend)
    {
        using var model = LlamaModel.FromPretrained(Folder(name));
        var tokenizer = Tokenizer.FromPretrained(Folder(name));
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { Backend = backend });
        var report = engine.CheckParity();
        Assert.True(report.Relative <= 1e-3f, report.ToString());

        const string prompt = "The quick brown fox jumps over 1234 lazy dogs. Привет";
        var ids = engine.TokenizePrompt(prompt).Select(i => (long)i).ToList();
        Assert.Equal(tokenizer.AddBosToken && tokenizer.BosId >= 0 ? [tokenizer.BosId, .. tokenizer.Encode(prompt)] : tokenizer.Encode(prompt),
            ids.Select(i => (int)i));
        var sample = engine.Generate([prompt], SamplingParams.Greedy(12))[0].Samples[0];
        using var _ = torch.no_grad();
        var expected = new List<int>();
        for (int t = 0; t < 12; t++)
        {
            using var logits = model.forward(torch.tensor(ids.ToArray(), [1, ids.Count]));
            long next = logits[0, -1].argmax().item<long>();
            expected.Add((int)next);
            ids.Add(next);
            if (next == tokenizer.EosId) break;
        }
        Assert.Equal(expected, sample.TokenIds);
    }

    [Fact]
    public void Engine_refuses_a_tokenizer_llama_cpp_cannot_express_and_names_the_torch_engine()
    {
        // The GPT-2 tokenizer with add_prefix_space over the Llama 3 fixture's weights (same vocabulary).
        using var model = LlamaModel.FromPretrained(Folder("llama3_tied"));
        var tokenizer = Tokenizer.FromPretrained(Path.Combine(Folder("llama3_tied"), "..", "..", "tokenizers", "bpe_gpt2_prefix"));
        var e = Assert.Throws<NotSupportedException>(() => TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { Backend = SamplingBackend.LlamaCpp }));
        Assert.Contains("EngineOptions.Backend = Torch", e.Message);

        // The torch engine takes token ids only, so the same tokenizer works there.
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { Backend = SamplingBackend.Torch });
        Assert.True(engine.CheckParity().Relative <= 1e-3f);
        Assert.Single(engine.Generate(["Hello world"], SamplingParams.Greedy(4))[0].Samples);
    }

    [Theory]
    [InlineData("llama3_tied")]
    [InlineData("qwen2_bias")]
    [InlineData("mistral_linear")]
    [InlineData("llama_yarn_bias")]
    public void Llama_cpp_loads_the_gguf_vocabulary_and_tokenizes_plain_text_alike(string name)
    {
        using var model = LlamaModel.FromPretrained(Folder(name));
        var tokenizer = Tokenizer.FromPretrained(Folder(name));
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, tokenizer, Small with { Backend = SamplingBackend.LlamaCpp, ParityCheck = ParityCheckMode.Never });
        foreach (var text in new[] { "Hello world", "The quick brown fox jumps over the lazy dog.", "Numbers 1234 and 56789", "Привет, мир!" })
            Assert.Equal(tokenizer.Encode(text), ((LlamaSamplingEngine)engine).TokenizeWithLlama(text));
    }
}
