using System.Buffers.Binary;
using System.Text.Json.Nodes;
using TorchSharp;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

public class SafetensorsTests
{
    static readonly LlamaConfig Small = LlamaConfig.Tiny with { TieWordEmbeddings = false, MaxPositionEmbeddings = 32 };

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.Float16)]
    [InlineData(ScalarType.BFloat16)]
    public void Round_trip_is_bit_exact(ScalarType dtype)
    {
        using var dir = new TestSetup.TempDir();
        var g = new Generator(11);
        var tensors = new List<(string, Tensor)>
        {
            ("a", randn([3, 5], generator: g).to(dtype)),
            ("b.weight", randn([7], generator: g).to(dtype)),
            ("empty", zeros([0, 4], dtype)),
            ("special", tensor(new float[] { float.NaN, float.PositiveInfinity, -0f, 1e-40f }).to(dtype)),
        };
        SafetensorsFile.Save(dir["x.safetensors"], tensors);
        using var file = SafetensorsFile.Open(dir["x.safetensors"]);
        Assert.Equal(tensors.Select(t => t.Item1).Order(), file.Entries.Keys.Order());
        foreach (var (name, t) in tensors)
        {
            using var back = file.Read(name);
            Assert.Equal(dtype, back.dtype);
            Assert.Equal(t.shape, back.shape);
            Assert.Equal(t.bytes.ToArray(), back.bytes.ToArray());
        }
        // The header is the standard layout: u64 length, JSON, data aligned to 8 bytes.
        byte[] raw = File.ReadAllBytes(dir["x.safetensors"]);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.Equal(0UL, n % 8);
        var header = JsonNode.Parse(raw.AsSpan(8, (int)n))!;
        Assert.Equal(dtype switch { ScalarType.Float32 => "F32", ScalarType.Float16 => "F16", _ => "BF16" }, header["a"]!["dtype"]!.GetValue<string>());
        Assert.False(File.Exists(dir["x.safetensors.tmp"]));
    }

    [Fact]
    public void Model_save_and_load_round_trip_single_and_sharded()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 3);
        m.SaveTo(dir["single"]);
        m.SaveTo(dir["sharded"], maxShardBytes: 100_000);
        Assert.True(File.Exists(Path.Combine(dir["single"], "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(dir["sharded"], "model.safetensors.index.json")));
        Assert.False(File.Exists(Path.Combine(dir["sharded"], "model.safetensors")));
        Assert.True(Directory.GetFiles(dir["sharded"], "model-*-of-*.safetensors").Length > 1);
        var ids = tensor(new long[] { 5, 6, 7, 8, 9 }).unsqueeze(0);
        using var _ = no_grad();
        var expected = m.forward(ids);
        foreach (var folder in new[] { dir["single"], dir["sharded"] })
        {
            using var loaded = LlamaModel.FromPretrained(folder);
            Assert.Equal(Small, loaded.Config);
            foreach (var ((n1, p1), (n2, p2)) in m.named_parameters().Zip(loaded.named_parameters()))
            {
                Assert.Equal(n1, n2);
                Assert.Equal(p1.bytes.ToArray(), p2.bytes.ToArray());
            }
            Assert.True(expected.equal(loaded.forward(ids)).all().item<bool>());
        }
    }

    [Fact]
    public void Half_precision_checkpoints_load_into_the_float32_model()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 4);
        m.SaveTo(dir["bf16"], ScalarType.BFloat16);
        Assert.Equal("bfloat16", JsonNode.Parse(File.ReadAllText(Path.Combine(dir["bf16"], "config.json")))!["torch_dtype"]!.GetValue<string>());
        using var loaded = LlamaModel.FromPretrained(dir["bf16"]);
        var p = loaded.named_parameters().First(x => x.name == "model.embed_tokens.weight").parameter;
        var orig = m.named_parameters().First(x => x.name == "model.embed_tokens.weight").parameter;
        Assert.Equal(ScalarType.Float32, p.dtype);
        Assert.True(p.equal(orig.to(ScalarType.BFloat16).to(ScalarType.Float32)).all().item<bool>());
    }

    [Fact]
    public void Wrong_shape_is_an_error_naming_the_tensor_and_both_shapes()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small);
        m.SaveTo(dir["m"]);
        // Same weights under a config with a wider MLP.
        (Small with { IntermediateSize = 192 }).Save(Path.Combine(dir["m"], "config.json"));
        var ex = Assert.Throws<InvalidDataException>(() => LlamaModel.FromPretrained(dir["m"]));
        Assert.Contains("\"model.layers.0.mlp.gate_proj.weight\"", ex.Message);
        Assert.Contains("[176, 64]", ex.Message);
        Assert.Contains("[192, 64]", ex.Message);
    }

    [Fact]
    public void Missing_tensor_is_an_error_naming_it()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small);
        var tensors = m.named_parameters().Where(p => p.name != "model.norm.weight").Select(p => (p.name, (Tensor)p.parameter)).ToList();
        Directory.CreateDirectory(dir["m"]);
        SafetensorsFile.Save(Path.Combine(dir["m"], "model.safetensors"), tensors);
        Small.Save(Path.Combine(dir["m"], "config.json"));
        var ex = Assert.Throws<InvalidDataException>(() => LlamaModel.FromPretrained(dir["m"]));
        Assert.Contains("\"model.norm.weight\"", ex.Message);
        Assert.Contains("missing", ex.Message);
    }

    [Fact]
    public void Truncated_file_is_rejected()
    {
        using var dir = new TestSetup.TempDir();
        SafetensorsFile.Save(dir["x.safetensors"], [("a", ones(100))]);
        byte[] raw = File.ReadAllBytes(dir["x.safetensors"]);
        File.WriteAllBytes(dir["y.safetensors"], raw[..^8]);
        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsFile.Open(dir["y.safetensors"]));
        Assert.Contains("\"a\"", ex.Message);
    }
}
