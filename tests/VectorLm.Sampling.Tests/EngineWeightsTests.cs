using TorchSharp;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

public class EngineWeightsTests
{
    static EngineOptions Options(EngineWeightType type) =>
        new() { WeightType = type, ContextLength = 64, MaxSequences = 4, Threads = 1 };

    [Theory]
    [InlineData(EngineWeightType.F32, 1e-3)]
    [InlineData(EngineWeightType.F16, 5e-2)]
    [InlineData(EngineWeightType.BF16, 5e-2)]
    public void Parity_gate_passes_for_a_faithful_conversion(EngineWeightType type, double tolerance)
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 3);
        using var engine = model.CreateEngine(Options(type) with { ParityTolerance = (float)tolerance });   // gate runs at build
        var report = engine.CheckParity();
        Assert.True(report.Relative <= tolerance, report.ToString());
        Assert.True(report.LogitScale > 0.5f, "probe logits should not be degenerate");
    }

    [Fact]
    public void Parity_gate_passes_for_tied_embeddings_and_grouped_query_attention()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(tied: true), 4);
        using var engine = model.CreateEngine(Options(EngineWeightType.F32));
        Assert.True(engine.CheckParity().Relative <= 1e-3f);
    }

    [Fact]
    public void Parity_gate_throws_when_an_engine_weight_is_corrupted()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 5);
        using var engine = model.CreateEngine(Options(EngineWeightType.F16));
        var q = engine.Model.Tensors.First(t => t.Name == "blk.1.attn_v.weight");
        WeightWriter.Fill(q.Tensor, 0.5f);
        var e = Assert.Throws<WeightParityException>(() => engine.CheckParity());
        Assert.Contains("F16", e.Message);
    }

    [Fact]
    public void Parity_gate_rejects_q_k_rows_copied_without_the_rotary_permutation()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 6);
        using var engine = model.CreateEngine(Options(EngineWeightType.F32));
        var k = engine.Model.Tensors.First(t => t.Name == "blk.0.attn_k.weight");
        WeightWriter.Write(k.Tensor, k.Name, model.Parameters["model.layers.0.self_attn.k_proj.weight"], permuteHeads: 0);
        Assert.Throws<WeightParityException>(() => engine.CheckParity());
        // Written again with the permutation, parity is back.
        WeightWriter.Write(k.Tensor, k.Name, model.Parameters["model.layers.0.self_attn.k_proj.weight"], model.Arch.KvHeadCount);
        Assert.True(engine.CheckParity().Relative <= 1e-3f);
    }

    [Theory]
    [InlineData(EngineWeightType.F32)]
    [InlineData(EngineWeightType.F16)]
    public void Swap_gives_bit_identical_logits_to_a_fresh_build(EngineWeightType type)
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 7);
        using var engine = model.CreateEngine(Options(type));
        int[] probe = engine.TokenizePrompt("The quick brown fox, ü.");
        var before = engine.EvaluateLogits(probe);

        using var updated = new ReferenceLlama(ReferenceLlama.TinyArch(), 8);
        using (torch.no_grad())
            foreach (var (name, t) in model.Parameters) t.copy_(updated.Parameters[name]);
        Assert.Equal(0, engine.WeightVersion);
        engine.MarkStale();
        Assert.True(engine.IsStale);
        var swapped = engine.EvaluateLogits(probe);   // lazy: the sync happens here
        Assert.False(engine.IsStale);
        Assert.Equal(1, engine.WeightVersion);

        using var fresh = updated.CreateEngine(Options(type));
        var expected = fresh.EvaluateLogits(probe);
        Assert.Equal(expected, swapped);              // exact, element by element
        Assert.NotEqual(before, swapped);
    }

    [Fact]
    public void Sync_clears_the_kv_cache_and_only_copies_when_stale()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 9);
        using var engine = model.CreateEngine(Options(EngineWeightType.F16));
        engine.Prefill([1, 10, 11, 12]);
        Assert.Equal(3, engine.CachedPositionMax(0));
        engine.SyncWeights();                          // not stale: nothing happens
        Assert.Equal(3, engine.CachedPositionMax(0));
        Assert.Equal(0, engine.WeightVersion);
        engine.MarkStale();
        engine.SyncWeights();
        Assert.Equal(-1, engine.CachedPositionMax(0));
        Assert.Equal(1, engine.WeightVersion);
    }

    [Fact]
    public void Trainer_context_weight_notifications_mark_the_engine_stale()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 10);
        var ctx = TrainerContext.SingleProcess();
        var engine = model.CreateEngine(Options(EngineWeightType.F16), ctx);
        ctx.NotifyWeightsChanged();
        Assert.True(engine.IsStale);
        engine.SyncWeights();
        Assert.False(engine.IsStale);
        engine.Dispose();
        ctx.NotifyWeightsChanged();                    // unsubscribed on dispose
        Assert.False(engine.IsStale);
    }

    [Fact]
    public void Unmapped_trainer_parameters_are_a_clear_error()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 11);
        // Biases map now (Qwen2, attention_bias); a per-head q norm (Qwen3) has no llama.cpp tensor in the Llama graph.
        model.Parameters["model.layers.0.self_attn.q_norm.weight"] = torch.ones(16);
        var e = Assert.Throws<ArgumentException>(() => model.CreateEngine(Options(EngineWeightType.F16)));
        Assert.Contains("q_norm.weight", e.Message);
    }

    [Fact]
    public void Llama_cpp_tokenizer_agrees_with_the_trainer_tokenizer_on_random_text()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 12);
        using var engine = model.CreateEngine(Options(EngineWeightType.F16) with { ParityCheck = ParityCheckMode.Never });
        var codec = new ByteCodec();
        var rng = new Random(1234);
        string alphabet = "abcdefghijklmnopqrstuvwxyz ABC  0123456789.,!?'\"\n\téàüßøñçЖжπλ中文字日本語한국어🙂🚀";
        var elements = System.Globalization.StringInfo.GetTextElementEnumerator(alphabet);
        var symbols = new List<string>();
        while (elements.MoveNext()) symbols.Add((string)elements.Current);
        for (int i = 0; i < 200; i++)
        {
            var text = string.Concat(Enumerable.Range(0, rng.Next(0, 40)).Select(_ => symbols[rng.Next(symbols.Count)]));
            Assert.Equal(codec.Encode(text), engine.TokenizeWithLlama(text));
        }
    }
}
