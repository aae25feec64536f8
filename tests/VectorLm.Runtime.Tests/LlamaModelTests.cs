using System.Text.Json.Nodes;
using TorchSharp;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

public class LlamaModelTests
{
    static readonly LlamaConfig Small = LlamaConfig.Tiny with { TieWordEmbeddings = false, MaxPositionEmbeddings = 32 };

    [Fact]
    public void Parameters_carry_the_hugging_face_names_and_shapes()
    {
        using var m = LlamaModel.Create(Small);
        var names = m.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        var expected = new Dictionary<string, long[]>
        {
            ["model.embed_tokens.weight"] = [259, 64],
            ["model.norm.weight"] = [64],
            ["lm_head.weight"] = [259, 64],
        };
        for (int i = 0; i < 2; i++)
        {
            string p = $"model.layers.{i}.";
            expected[p + "self_attn.q_proj.weight"] = [64, 64];
            expected[p + "self_attn.k_proj.weight"] = [32, 64];
            expected[p + "self_attn.v_proj.weight"] = [32, 64];
            expected[p + "self_attn.o_proj.weight"] = [64, 64];
            expected[p + "mlp.gate_proj.weight"] = [176, 64];
            expected[p + "mlp.up_proj.weight"] = [176, 64];
            expected[p + "mlp.down_proj.weight"] = [64, 176];
            expected[p + "input_layernorm.weight"] = [64];
            expected[p + "post_attention_layernorm.weight"] = [64];
        }
        Assert.Equal(expected.Keys.Order(), names.Keys.Order());
        foreach (var (k, shape) in expected) Assert.Equal(shape, names[k]);

        using var tied = LlamaModel.Create(LlamaConfig.Tiny);
        Assert.DoesNotContain(tied.named_parameters(), p => p.name == "lm_head.weight");
    }

    [Fact]
    public void Create_initialises_with_std_002_from_the_seed()
    {
        using var a = LlamaModel.Create(Small, seed: 7);
        using var b = LlamaModel.Create(Small, seed: 7);
        using var c = LlamaModel.Create(Small, seed: 8);
        var pa = a.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var q = pa["model.layers.0.self_attn.q_proj.weight"];
        Assert.InRange(q.std().item<float>(), 0.017f, 0.023f);
        Assert.Equal(1f, pa["model.norm.weight"].min().item<float>());
        Assert.True(q.equal(b.named_parameters().First(p => p.name == "model.layers.0.self_attn.q_proj.weight").parameter).all().item<bool>());
        Assert.False(q.equal(c.named_parameters().First(p => p.name == "model.layers.0.self_attn.q_proj.weight").parameter).all().item<bool>());
    }

    [Fact]
    public void Forward_gives_logits_and_is_causal()
    {
        using var m = LlamaModel.Create(Small, seed: 1);
        using var _ = no_grad();
        var ids = randint(0, 259, [2, 10], dtype: ScalarType.Int64, generator: new Generator(3));
        var logits = m.forward(ids);
        Assert.Equal(new long[] { 2, 10, 259 }, logits.shape);
        var changed = ids.clone();
        changed[0, 7] = (ids[0, 7] + 1) % 259;
        var logits2 = m.forward(changed);
        Assert.True(logits[0, ..7].allclose(logits2[0, ..7], rtol: 0, atol: 1e-6));
        Assert.False(logits[0, 7..].allclose(logits2[0, 7..], rtol: 0, atol: 1e-6));
        Assert.True(logits[1].allclose(logits2[1], rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Incremental_decoding_with_the_kv_cache_matches_the_full_forward()
    {
        using var m = LlamaModel.Create(Small, seed: 2);
        using var _ = no_grad();
        var ids = randint(0, 259, [3, 12], dtype: ScalarType.Int64, generator: new Generator(4));
        var full = m.forward(ids);
        using var cache = m.NewKvCache(3);
        var prefill = m.forward(ids[.., ..5], cache);        // prompt
        var chunk = m.forward(ids[.., 5..8], cache);         // several new tokens after a past
        var steps = Enumerable.Range(8, 4).Select(t => m.forward(ids[.., t..(t + 1)], cache)).ToList();
        Assert.Equal(12, cache.Length);
        var incremental = cat([prefill, chunk, .. steps], 1);
        Assert.True(full.allclose(incremental, rtol: 1e-4, atol: 1e-5), $"max diff {(full - incremental).abs().max().item<float>()}");
    }

    [Fact]
    public void Sequence_longer_than_max_positions_is_a_clear_error()
    {
        using var m = LlamaModel.Create(Small);
        var ex = Assert.Throws<ArgumentException>(() => m.forward(zeros([1, 33], ScalarType.Int64)));
        Assert.Contains("33", ex.Message);
        Assert.Contains("max_position_embeddings 32", ex.Message);
        using var cache = m.NewKvCache(1);
        using (no_grad()) m.forward(zeros([1, 30], ScalarType.Int64), cache);
        ex = Assert.Throws<ArgumentException>(() => m.forward(zeros([1, 3], ScalarType.Int64), cache));
        Assert.Contains("30 cached + 3 new", ex.Message);
    }

    [Fact]
    public void Loss_ignores_minus_100_labels()
    {
        using var m = LlamaModel.Create(Small, seed: 5);
        var ids = randint(0, 259, [2, 8], dtype: ScalarType.Int64, generator: new Generator(5));
        var labels = randint(0, 259, [2, 8], dtype: ScalarType.Int64, generator: new Generator(6));
        var masked = labels.clone();
        masked[.., ..4] = -100;
        using var _ = no_grad();
        float all = m.Loss(ids, labels).item<float>();
        float some = m.Loss(ids, masked).item<float>();
        var logp = nn.functional.log_softmax(m.forward(ids), -1);
        float manual = -logp[.., 4..].gather(-1, labels[.., 4..].unsqueeze(-1)).mean().item<float>();
        Assert.Equal(manual, some, 4);
        Assert.NotEqual(all, some);
        Assert.InRange(all, Math.Log(259) - 0.5, Math.Log(259) + 0.5); // small init: near uniform
    }
    [Fact]
    public void Cpu_loss_over_row_blocks_matches_whole_batch_cross_entropy_and_its_gradients()
    {
        // 4096 x 4 bytes per row: 256 rows per 4 MiB block, so 2 x 200 tokens take two blocks (256 + 144 rows).
        var config = Small with { VocabSize = 4096, MaxPositionEmbeddings = 256 };
        long blockRows = LlamaModel.CpuLossBlockBytes / (4 * config.VocabSize);
        Assert.Equal(256, blockRows);
        using var m = LlamaModel.Create(config, seed: 3);
        var ids = randint(0, config.VocabSize, [2, 200], dtype: ScalarType.Int64, generator: new Generator(8));
        var labels = randint(0, config.VocabSize, [2, 200], dtype: ScalarType.Int64, generator: new Generator(9));
        labels[0, ..50] = -100; // ignored positions in the first block only: the blocks hold different label counts
        var parameters = m.parameters().ToList();

        using var blocked = m.Loss(ids, labels);
        blocked.backward();
        var blockedGrads = parameters.Select(p => p.grad!.clone()).ToList();
        m.zero_grad();
        using var whole = nn.functional.cross_entropy(m.forward(ids).view(-1, config.VocabSize), labels.view(-1), ignore_index: -100);
        whole.backward();

        Assert.Equal(whole.item<float>(), blocked.item<float>(), 1e-5f);
        for (int i = 0; i < parameters.Count; i++)
            Assert.True(blockedGrads[i].allclose(parameters[i].grad!, rtol: 1e-4, atol: 1e-7), $"gradient {i} differs");

        // Nothing labelled: NaN, as cross_entropy's mean gives.
        using (no_grad())
        using (var none = m.Loss(ids, full_like(labels, -100)))
            Assert.True(float.IsNaN(none.item<float>()));
    }
}
