using System.Text.Json.Nodes;
using VectorLm.Models;

namespace VectorLm.Runtime.Tests;

public class LlamaConfigTests
{
    [Fact]
    public void Config_round_trips_through_config_json()
    {
        using var dir = new TestSetup.TempDir();
        var config = LlamaConfig.Tiny with { NumKeyValueHeads = 1, RopeTheta = 500000, TieWordEmbeddings = false };
        config.Save(dir["config.json"]);
        Assert.Equal(config, LlamaConfig.Load(dir["config.json"]));
        var json = JsonNode.Parse(File.ReadAllText(dir["config.json"]))!;
        Assert.Equal("llama", json["model_type"]!.GetValue<string>());
        Assert.Equal(500000.0, json["rope_theta"]!.GetValue<double>());
        Assert.Equal(1, json["num_key_value_heads"]!.GetValue<int>());
    }

    [Fact]
    public void Configs_written_by_recent_and_older_transformers_load()
    {
        using var dir = new TestSetup.TempDir();
        // transformers 4.5x style: torch_dtype, rope_scaling null, head_dim, extra fields.
        File.WriteAllText(dir["a.json"], """
            {"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,"bos_token_id":1,
             "eos_token_id":2,"head_dim":64,"hidden_act":"silu","hidden_size":576,"initializer_range":0.02,
             "intermediate_size":1536,"max_position_embeddings":8192,"mlp_bias":false,"model_type":"llama",
             "num_attention_heads":9,"num_hidden_layers":30,"num_key_value_heads":3,"pretraining_tp":1,
             "rms_norm_eps":1e-05,"rope_scaling":null,"rope_theta":100000,"tie_word_embeddings":true,
             "torch_dtype":"bfloat16","transformers_version":"4.55.0","use_cache":true,"vocab_size":49152}
            """);
        var a = LlamaConfig.Load(dir["a.json"]);
        Assert.Equal((576, 9, 3, 64, 100000.0, true), (a.HiddenSize, a.NumAttentionHeads, a.NumKeyValueHeads, a.HeadDim, a.RopeTheta, a.TieWordEmbeddings));
        // transformers 5 style: dtype and rope_parameters instead of torch_dtype and rope_theta.
        File.WriteAllText(dir["b.json"], """
            {"architectures":["LlamaForCausalLM"],"dtype":"float32","hidden_size":64,"intermediate_size":176,
             "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":259,
             "rope_parameters":{"rope_theta":20000.0,"rope_type":"default"},"transformers_version":"5.0.0"}
            """);
        var b = LlamaConfig.Load(dir["b.json"]);
        Assert.Equal(20000.0, b.RopeTheta);
        Assert.Equal(1e-6, b.RmsNormEps); // transformers' default
        Assert.False(b.TieWordEmbeddings);
        // older: no num_key_value_heads means multi-head attention.
        File.WriteAllText(dir["c.json"], """{"hidden_size":64,"intermediate_size":176,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":259}""");
        Assert.Equal(4, LlamaConfig.Load(dir["c.json"]).NumKeyValueHeads);
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("vocab_size")]
    public void Missing_required_field_is_an_error_naming_it(string field)
    {
        using var dir = new TestSetup.TempDir();
        var json = LlamaConfig.Tiny.ToJson();
        json.Remove(field);
        File.WriteAllText(dir["config.json"], json.ToJsonString());
        var ex = Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(dir["config.json"]));
        Assert.Contains($"\"{field}\"", ex.Message);
        Assert.Contains("config.json", ex.Message);
    }

    [Fact]
    public void Unsupported_fields_are_errors_not_ignored()
    {
        using var dir = new TestSetup.TempDir();
        var json = LlamaConfig.Tiny.ToJson();
        json["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0 };
        File.WriteAllText(dir["config.json"], json.ToJsonString());
        Assert.Contains("rope_scaling", Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(dir["config.json"])).Message);
        json = LlamaConfig.Tiny.ToJson();
        json["num_key_value_heads"] = 3;
        File.WriteAllText(dir["config.json"], json.ToJsonString());
        Assert.Contains("num_key_value_heads 3", Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(dir["config.json"])).Message);
    }
}
