using System.Text.Json.Nodes;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

/// <summary>
/// Compatibility with PEFT itself, from fixtures in tests/fixtures/lora made by make_peft_fixture.py with peft and
/// transformers: an adapter PEFT wrote must give PEFT's logits here, and PEFT's logits for the adapter saved here must
/// be ours. <c>VECTORLM_WRITE_LORA_FIXTURE=1</c> rewrites this side's inputs (base model and our adapter); the script
/// then writes PEFT's side.
/// </summary>
public class PeftFixtureTests
{
    // Small enough to commit: 2 layers, hidden 32, untied head, grouped-query attention.
    static readonly LlamaConfig Config = LlamaConfig.Tiny with
    {
        HiddenSize = 32, IntermediateSize = 64, NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 64, TieWordEmbeddings = false,
    };

    static readonly string Folder = HfFixtures.Lora;

    // PEFT's side: the input ids and the logits of the base model and of each adapter on them.
    static SafetensorsFile Reference() => SafetensorsFile.Open(Path.Combine(Folder, "peft_logits.safetensors"));

    // The fixture's base model with the adapter of subfolder `adapter` loaded.
    static LlamaModel BaseWithAdapter(string adapter)
    {
        var m = LlamaModel.FromPretrained(Path.Combine(Folder, "base"));
        m.LoadAdapter(Path.Combine(Folder, adapter));
        return m;
    }

    static float[] Logits(LlamaModel m, Tensor ids)
    {
        using var _ = no_grad();
        m.eval();
        return m.forward(ids).to(ScalarType.Float32).contiguous().data<float>().ToArray();
    }

    static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        float diff = 0, scale = 0;
        for (int i = 0; i < expected.Length; i++) { diff = Math.Max(diff, Math.Abs(expected[i] - actual[i])); scale = Math.Max(scale, Math.Abs(expected[i])); }
        Assert.True(diff <= 1e-4f * scale, $"{what}: max |diff| {diff:G3} against PEFT (logit scale {scale:G3})");
    }

    // This side's inputs (base model, our adapter, the ids), written into `folder`.
    static void WriteThisSidesInputs(string folder)
    {
        using var m = LlamaModel.Create(Config, seed: 21);
        m.SaveTo(Path.Combine(folder, "base"));
        m.AddLora(new LoraConfig { R = 4, Alpha = 8, UseRsLora = true, TargetModules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], Seed = 5 });
        using (no_grad())
        {
            var g = new Generator(6);
            foreach (var w in m.AdapterWeights()) w.B.copy_(randn(w.B.shape, generator: g) * 0.1);
        }
        m.SaveAdapter(Path.Combine(folder, "ours_adapter"));
        using var ids = randint(3, Config.VocabSize, [2, 10], generator: new Generator(8));
        SafetensorsFile.Save(Path.Combine(folder, "ids.safetensors"), [("ids", ids.to(ScalarType.Float32))]);
    }

    // The committed inputs are what this code writes (so PEFT's logits were computed for today's model, adapter
    // layout and seeds); VECTORLM_WRITE_LORA_FIXTURE=1 rewrites them in place instead, for make_peft_fixture.py.
    [Fact]
    public void The_committed_inputs_are_what_this_side_writes()
    {
        if (Environment.GetEnvironmentVariable("VECTORLM_WRITE_LORA_FIXTURE") == "1")
        {
            WriteThisSidesInputs(Folder);
            return;
        }
        using var fresh = new TestSetup.TempDir();
        WriteThisSidesInputs(fresh.Path);
        foreach (var file in new[] { "base/model.safetensors", "ours_adapter/adapter_model.safetensors", "ids.safetensors" })
        {
            using var committed = SafetensorsFile.Open(Path.Combine(Folder, file));
            using var written = SafetensorsFile.Open(fresh[file]);
            Assert.Equal(committed.Entries.Keys.Order(), written.Entries.Keys.Order());
            foreach (var name in committed.Entries.Keys)
            {
                using var a = committed.Read(name);
                using var b = written.Read(name);
                Assert.True(a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>(), $"{file}: tensor {name} differs from the committed fixture");
            }
        }
    }

    [Fact]
    public void A_peft_written_adapter_gives_peft_logits()
    {
        using var reference = Reference();
        using var ids = reference.Read("ids").to(ScalarType.Int64);
        using var m = BaseWithAdapter("peft_adapter");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "peft_adapter", "adapter_config.json")))!;
        Assert.Equal(config["r"]!.GetValue<int>(), m.Lora!.R); // read from PEFT's own file
        using var expected = reference.Read("peft_adapter_logits");
        AssertClose(expected.data<float>().ToArray(), Logits(m, ids), "PEFT-written adapter");
        // The adapter matters at this tolerance.
        using var baseOnly = LlamaModel.FromPretrained(Path.Combine(Folder, "base"));
        using var baseLogits = reference.Read("base_logits");
        AssertClose(baseLogits.data<float>().ToArray(), Logits(baseOnly, ids), "base model");
        Assert.Throws<Xunit.Sdk.TrueException>(() => AssertClose(expected.data<float>().ToArray(), Logits(baseOnly, ids), "base vs adapted"));
    }

    [Fact]
    public void Peft_loads_the_adapter_saved_here_and_gives_our_logits()
    {
        using var reference = Reference();
        using var ids = reference.Read("ids").to(ScalarType.Int64);
        using var m = BaseWithAdapter("ours_adapter");
        using var peft = reference.Read("ours_adapter_logits"); // computed by PeftModel.from_pretrained on our folder
        AssertClose(peft.data<float>().ToArray(), Logits(m, ids), "our adapter in PEFT");
    }
}
