using System.Text.Json.Nodes;
using VectorLm.Models;
using VectorLm.Tokenization;
using Xunit;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

/// <summary>
/// Checkpoints saved by transformers 5.17 (tests/fixtures/hf/models): Llama 3 style (llama3 RoPE, tied, explicit
/// head_dim), Qwen2 (q/k/v biases, sharded, vocab padded past the tokenizer), Llama with yarn RoPE and all biases,
/// Mistral with linear RoPE. Logits of <see cref="LlamaModel"/> must equal transformers' within 1e-4 (float32).
/// </summary>
public class HfCheckpointTests
{
    public static TheoryData<string> Models => new() { "llama3_tied", "qwen2_bias", "llama_yarn_bias", "mistral_linear" };

    [Theory, MemberData(nameof(Models))]
    public void Logits_equal_transformers_within_1e_4(string name)
    {
        string folder = HfFixtures.Model(name);
        var reference = HfFixtures.Reference(folder);
        using var model = LlamaModel.FromPretrained(folder);
        var rows = reference["input_ids"]!.AsArray().Select(r => HfFixtures.Ints(r).Select(i => (long)i).ToArray()).ToArray();
        var shape = HfFixtures.Ints(reference["logits_shape"]);
        var expected = ReadFloats(Path.Combine(folder, "logits.bin"));
        Assert.Equal((long)shape[0] * shape[1] * shape[2], expected.Length);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(rows.SelectMany(r => r).ToArray(), [rows.Length, rows[0].Length]);
        var actual = model.forward(ids).contiguous().data<float>().ToArray();
        float maxDiff = 0, scale = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        Assert.True(scale > 0.5f, $"logit scale {scale} too small for the comparison to mean anything");
        Assert.True(maxDiff <= 1e-4f, $"max |diff| {maxDiff} (logit scale {scale})");
    }

    [Theory, MemberData(nameof(Models))]
    public void Greedy_decode_with_the_kv_cache_equals_transformers_generate(string name)
    {
        string folder = HfFixtures.Model(name);
        var reference = HfFixtures.Reference(folder);
        using var model = LlamaModel.FromPretrained(folder);
        var prompt = HfFixtures.Ints(reference["greedy_prompt"]).Select(i => (long)i).ToArray();
        var expected = HfFixtures.Ints(reference["greedy"]);
        using var _ = no_grad();
        using var cache = model.NewKvCache(1, 64);
        var generated = new List<int>();
        using (var scope = NewDisposeScope())
        {
            var logits = model.forward(tensor(prompt, [1, prompt.Length]), cache);
            for (int t = 0; t < expected.Length; t++)
            {
                long next = logits[0, -1].argmax().item<long>();
                generated.Add((int)next);
                logits = model.forward(tensor(new[] { next }, [1, 1]), cache);
            }
        }
        Assert.Equal(expected, generated);
    }

    [Theory, MemberData(nameof(Models))]
    public void Rope_frequencies_and_attention_factor_equal_transformers(string name)
    {
        string folder = HfFixtures.Model(name);
        var reference = HfFixtures.Reference(folder);
        var config = LlamaConfig.Load(Path.Combine(folder, "config.json"));
        var expected = reference["inv_freq"]!.AsArray().Select(n => n!.GetValue<double>()).ToArray();
        var actual = config.RopeInverseFrequencies();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= 1e-6 * expected[i], $"inv_freq[{i}]: {actual[i]} vs {expected[i]}");
        Assert.Equal(reference["attention_scaling"]!.GetValue<double>(), config.RopeAttentionFactor, 6);
    }

    [Theory]
    [InlineData("qwen2_bias")]
    [InlineData("llama_yarn_bias")]
    [InlineData("llama3_tied")]
    public void SaveTo_round_trips_config_biases_and_rope(string name)
    {
        using var dir = new TestSetup.TempDir();
        using var model = LlamaModel.FromPretrained(HfFixtures.Model(name));
        model.SaveTo(dir.Path);
        using var back = LlamaModel.FromPretrained(dir.Path);
        Assert.Equal(model.Config, back.Config with { RopeScaling = back.Config.RopeScaling });
        Assert.Equal(model.Config.RopeScaling, back.Config.RopeScaling);
        Assert.Equal((model.Config.ModelType, model.Config.QkvBias, model.Config.OutputBias, model.Config.MlpBias),
            (back.Config.ModelType, back.Config.QkvBias, back.Config.OutputBias, back.Config.MlpBias));
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = tensor(new long[] { 5, 17, 42, 99, 3, 250 }, [1, 6]);
        Assert.True(model.forward(ids).allclose(back.forward(ids), rtol: 0, atol: 0));
    }

    [Fact]
    public void Configs_read_model_type_biases_and_rope_scaling()
    {
        var llama3 = LlamaConfig.Load(Path.Combine(HfFixtures.Model("llama3_tied"), "config.json"));
        Assert.Equal(("llama", "llama3", 8.0, 32, true), (llama3.ModelType, llama3.RopeScaling.Type, llama3.RopeScaling.Factor, llama3.HeadDim, llama3.TieWordEmbeddings));
        Assert.Equal(500000, llama3.RopeTheta);
        var qwen2 = LlamaConfig.Load(Path.Combine(HfFixtures.Model("qwen2_bias"), "config.json"));
        Assert.Equal(("qwen2", true, false, false), (qwen2.ModelType, qwen2.QkvBias, qwen2.OutputBias, qwen2.MlpBias));
        var yarn = LlamaConfig.Load(Path.Combine(HfFixtures.Model("llama_yarn_bias"), "config.json"));
        Assert.Equal(("yarn", true, true, true), (yarn.RopeScaling.Type, yarn.QkvBias, yarn.OutputBias, yarn.MlpBias));
        var mistral = LlamaConfig.Load(Path.Combine(HfFixtures.Model("mistral_linear"), "config.json"));
        Assert.Equal(("mistral", "linear", 2.0), (mistral.ModelType, mistral.RopeScaling.Type, mistral.RopeScaling.Factor));
    }

    [Fact]
    public void Older_rope_scaling_and_rope_theta_fields_read_the_same()
    {
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(HfFixtures.Model("llama3_tied"), "config.json")))!;
        var rope = (JsonObject)json["rope_parameters"]!.DeepClone();
        json.Remove("rope_parameters");
        json["rope_theta"] = rope["rope_theta"]!.GetValue<double>();
        rope.Remove("rope_theta");
        rope["type"] = rope["rope_type"]!.GetValue<string>(); // transformers 4.x files say "type" or "rope_type"
        rope.Remove("rope_type");
        json["rope_scaling"] = rope;
        var old = LlamaConfig.FromJson(json);
        var current = LlamaConfig.Load(Path.Combine(HfFixtures.Model("llama3_tied"), "config.json"));
        Assert.Equal(current.RopeInverseFrequencies(), old.RopeInverseFrequencies());
        Assert.Equal(current.RopeTheta, old.RopeTheta);
    }

    [Fact]
    public void Unsupported_configs_name_the_file_and_field()
    {
        using var dir = new TestSetup.TempDir();
        string source = File.ReadAllText(Path.Combine(HfFixtures.Model("llama3_tied"), "config.json"));
        void Expect(Action<JsonObject> edit, string field)
        {
            var json = (JsonObject)JsonNode.Parse(source)!;
            edit(json);
            File.WriteAllText(dir["config.json"], json.ToJsonString());
            var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(dir["config.json"]));
            Assert.Contains("config.json", e.Message);
            Assert.Contains(field, e.Message);
        }
        Expect(j => j["rope_parameters"]!["rope_type"] = "longrope", "rope_parameters.rope_type");
        Expect(j => j["rope_parameters"]!["rope_type"] = "dynamic", "rope_parameters.rope_type");
        Expect(j => ((JsonObject)j["rope_parameters"]!).Remove("low_freq_factor"), "rope_parameters.low_freq_factor");
        Expect(j => j["model_type"] = "gemma", "model_type");
        Expect(j => j["use_sliding_window"] = true, "use_sliding_window");
        Expect(j => { j["model_type"] = "mistral"; j["sliding_window"] = 16; }, "sliding_window");
        Expect(j => j["hidden_act"] = "gelu", "hidden_act");
    }

    [Fact]
    public void Tokenizer_and_checkpoint_from_one_folder_agree_on_vocabulary()
    {
        foreach (var name in new[] { "llama3_tied", "qwen2_bias", "llama_yarn_bias", "mistral_linear" })
        {
            var tok = Tokenizer.FromPretrained(HfFixtures.Model(name));
            var config = LlamaConfig.Load(Path.Combine(HfFixtures.Model(name), "config.json"));
            Assert.True(tok.VocabSize <= config.VocabSize, name);
        }
    }

    static float[] ReadFloats(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var result = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, result, 0, bytes.Length);
        return result;
    }
}
