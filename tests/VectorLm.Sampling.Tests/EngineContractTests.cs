using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>
/// The contract every <see cref="IColocatedSampler"/> keeps, run against each engine by a subclass
/// (<see cref="LlamaEngineContractTests"/>, <see cref="TorchEngineContractTests"/>), on the f32 reference model.
/// </summary>
public abstract class EngineContractTests
{
    static readonly string[] Prompts = ["Once upon a time", "x", "The answer is 42, and", "ünïcödé ✓", "a b c d e f g"];

    /// <summary>An engine of this backend on <paramref name="model"/>'s parameters.</summary>
    private protected abstract IColocatedSampler Create(ReferenceLlama model, EngineOptions options, TrainerContext? trainer = null);

    /// <summary>Runs <paramref name="action"/> while holding the engine's lock.</summary>
    protected abstract void UnderLock(IColocatedSampler engine, Action action);

    static EngineOptions Options(int maxSequences = 4, EngineWeightType type = EngineWeightType.F32) =>
        new() { WeightType = type, ContextLength = 64, MaxSequences = maxSequences, BatchTokens = 64, Threads = 1, DecodeChunk = 4 };

    static int[][] Tokens(IReadOnlyList<Completion> r) => r.SelectMany(c => c.Samples.Select(s => s.TokenIds.ToArray())).ToArray();

    [Fact]
    public void Greedy_matches_the_trainer_models_argmax_and_its_log_probs()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 20);
        using var engine = Create(model, Options());
        var result = engine.Generate(Prompts, SamplingParams.Greedy(12));
        Assert.Equal(Prompts.Length, result.Count);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var sample = Assert.Single(result[i].Samples);
            Assert.Equal(i, result[i].PromptIndex);
            var prompt = engine.TokenizePrompt(Prompts[i]);
            var expected = model.Greedy(prompt, 12);
            Assert.Equal(expected, sample.TokenIds);
            Assert.Equal(FinishReason.Length, sample.FinishReason);
            Assert.Equal(new ByteCodec().Decode(expected), sample.Text);

            // Log-probs of the chosen tokens under the unmodified softmax.
            using var _ = torch.no_grad();
            var ids = prompt.Concat(expected).Select(t => (long)t).ToArray();
            var logp = model.Forward(torch.tensor(ids, [1, ids.Length])).log_softmax(-1);
            for (int t = 0; t < expected.Count; t++)
                Assert.Equal(logp[0, prompt.Length - 1 + t, expected[t]].item<float>(), sample.LogProbs[t], 3e-4f);
        }
    }

    [Fact]
    public void Sixteen_bit_weights_decode_finite_log_probs_close_to_f32()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 19);
        using var engine = Create(model, Options(type: EngineWeightType.BF16));
        foreach (var completion in engine.Generate(Prompts, SamplingParams.Greedy(8)))
        {
            var sample = completion.Samples[0];
            var prompt = engine.TokenizePrompt(Prompts[completion.PromptIndex]);
            using var _ = torch.no_grad();
            var ids = prompt.Concat(sample.TokenIds).Select(t => (long)t).ToArray();
            var logp = model.Forward(torch.tensor(ids, [1, ids.Length])).log_softmax(-1);
            for (int t = 0; t < sample.TokenIds.Count; t++)
                Assert.Equal(logp[0, prompt.Length - 1 + t, sample.TokenIds[t]].item<float>(), sample.LogProbs[t], 0.1f);
        }
    }

    [Fact]
    public void Samples_do_not_depend_on_batch_composition()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 21);
        var p = new SamplingParams { Temperature = 1.0f, TopK = 50, TopP = 0.95f, MinP = 0.01f, N = 3, MaxNewTokens = 10, Seed = 99 };
        using var wide = Create(model, Options(maxSequences: 8));
        using var narrow = Create(model, Options(maxSequences: 1));
        var a = wide.Generate(Prompts, p);
        var b = narrow.Generate(Prompts, p);
        Assert.Equal(Tokens(a), Tokens(b));
        // Same seed, same result; another seed, other samples.
        Assert.Equal(Tokens(a), Tokens(wide.Generate(Prompts, p)));
        Assert.NotEqual(Tokens(a), Tokens(wide.Generate(Prompts, p with { Seed = 100 })));
        // Samples of one prompt differ from each other (independent streams).
        Assert.Contains(a, c => !c.Samples[0].TokenIds.SequenceEqual(c.Samples[1].TokenIds));
        // Each prompt's samples equal that prompt run alone (its random streams are keyed by its index, so pass it at the same index).
        var alone = narrow.Generate(["", "", "", Prompts[3]], p)[3];
        Assert.Equal(a[3].Samples.Select(s => s.TokenIds.ToArray()), alone.Samples.Select(s => s.TokenIds.ToArray()));
    }

    [Fact]
    public void Top_k_one_tiny_top_p_and_full_min_p_are_greedy_and_log_probs_are_unmodified()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 22);
        using var engine = Create(model, Options());
        var greedy = engine.Generate(Prompts, SamplingParams.Greedy(8));
        var sampled = new SamplingParams { Temperature = 0.7f, MaxNewTokens = 8, Seed = 5 };
        foreach (var p in new[] { sampled with { TopK = 1 }, sampled with { TopP = 1e-4f }, sampled with { MinP = 1f } })
        {
            var result = engine.Generate(Prompts, p);
            for (int i = 0; i < Prompts.Length; i++)
            {
                Assert.Equal(greedy[i].Samples[0].TokenIds, result[i].Samples[0].TokenIds);
                Assert.Equal(greedy[i].Samples[0].LogProbs, result[i].Samples[0].LogProbs);
            }
        }
    }

    [Fact]
    public void Sampled_tokens_follow_the_tempered_distribution()
    {
        // Many one-token samples of one prompt: their frequencies must match softmax(logits / T) restricted to the top k.
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 29, std: 0.05f);
        using var engine = Create(model, Options(maxSequences: 64));
        var p = new SamplingParams { Temperature = 2f, TopK = 4, MaxNewTokens = 1, N = 2000, Seed = 3 };
        var samples = engine.Generate(["q"], p)[0].Samples;
        using var _ = torch.no_grad();
        var prompt = engine.TokenizePrompt("q");
        var logits = model.Forward(torch.tensor(prompt.Select(t => (long)t).ToArray(), [1, prompt.Length]))[0, -1];
        var (top, ids) = (logits / 2f).topk(4);
        var expected = top.softmax(-1).data<float>().ToArray();
        var topIds = ids.data<long>().ToArray();
        var counts = topIds.Select(id => samples.Count(s => s.TokenIds[0] == id) / (double)p.N).ToArray();
        Assert.Equal(p.N, samples.Count(s => topIds.Contains(s.TokenIds[0])));
        for (int k = 0; k < 4; k++) Assert.InRange(counts[k], expected[k] - 0.04, expected[k] + 0.04);
    }

    [Fact]
    public void Stop_strings_end_a_sample_and_stay_in_its_text()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 23);
        using var engine = Create(model, Options());
        var full = engine.Generate(["hello"], SamplingParams.Greedy(16))[0].Samples[0];
        // A stop string made of the 3rd-5th generated bytes (ASCII or not, decoded the same way).
        var codec = new ByteCodec();
        string stop = codec.Decode(full.TokenIds.Take(5).ToArray())[2..];
        Assert.False(string.IsNullOrEmpty(stop));
        var stopped = engine.Generate(["hello"], SamplingParams.Greedy(16) with { Stop = ["<never>", stop] })[0].Samples[0];
        Assert.Equal(FinishReason.Stop, stopped.FinishReason);
        Assert.EndsWith(stop, stopped.Text);
        Assert.StartsWith(stopped.Text, full.Text);
        Assert.True(stopped.TokenIds.Count < full.TokenIds.Count);
        Assert.Equal(full.TokenIds.Take(stopped.TokenIds.Count), stopped.TokenIds);
    }

    [Fact]
    public void End_of_sequence_finishes_a_sample_and_is_not_in_its_text()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 24);
        // Residual stream = token embedding, whose first component is 1; the final norm keeps only that component
        // and only the </s> output row reads it, so </s> is the most likely token after any prefix.
        using (torch.no_grad())
        {
            for (int i = 0; i < model.Arch.LayerCount; i++)
            {
                model.Parameters[$"model.layers.{i}.self_attn.o_proj.weight"].zero_();
                model.Parameters[$"model.layers.{i}.mlp.down_proj.weight"].zero_();
            }
            model.Parameters["model.embed_tokens.weight"][.., 0].fill_(1f);
            model.Parameters["model.norm.weight"].zero_()[0] = 1f;
            var head = model.Parameters["lm_head.weight"].zero_();
            head[2, 0] = 10f;
        }
        using var engine = Create(model, Options());
        var sample = engine.Generate(["abc"], SamplingParams.Greedy(5) with { N = 1 })[0].Samples[0];
        Assert.Equal(FinishReason.EndOfSequence, sample.FinishReason);
        Assert.Equal([2], sample.TokenIds);
        Assert.Equal("", sample.Text);
        Assert.True(sample.LogProbs[0] > -1e-3f);

        var ignoring = engine.Generate(["abc"], SamplingParams.Greedy(5) with { IgnoreEos = true })[0].Samples[0];
        Assert.Equal(FinishReason.Length, ignoring.FinishReason);
        Assert.Equal([2, 2, 2, 2, 2], ignoring.TokenIds);
    }

    [Fact]
    public void Slots_are_refilled_and_each_completion_equals_its_own_single_prompt_run()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 25);
        // Very different prompt lengths; the first one reaches the context early, so sequences finish in another order than they start.
        var options = Options(maxSequences: 2) with { ContextLength = 48 };
        using var engine = Create(model, options);
        var prompts = new[] { new string('a', 40), "b", "cc " + new string('d', 20), "e", new string('f', 9), "ghij", "k" };
        var p = new SamplingParams { Temperature = 0.8f, MaxNewTokens = 9, N = 2, Seed = 17 };
        var batched = engine.Generate(prompts, p);
        Assert.Equal(Enumerable.Range(0, prompts.Length), batched.Select(c => c.PromptIndex));
        using var single = Create(model, options with { MaxSequences = 1 });
        for (int i = 0; i < prompts.Length; i++)
        {
            var ids = engine.TokenizePrompt(prompts[i]);
            // The token-id overload at the same prompt index (padding prompts before it keep the random stream keys).
            var alone = single.Generate(Enumerable.Repeat(new[] { 1 }, i).Append(ids).ToList(), p)[i];
            for (int s = 0; s < p.N; s++)
            {
                Assert.Equal(alone.Samples[s].TokenIds, batched[i].Samples[s].TokenIds);
                Assert.Equal(alone.Samples[s].FinishReason, batched[i].Samples[s].FinishReason);
                for (int t = 0; t < alone.Samples[s].LogProbs.Count; t++)
                    Assert.Equal(alone.Samples[s].LogProbs[t], batched[i].Samples[s].LogProbs[t], 1e-4f);
            }
        }
        // 41 prompt tokens in a context of 48: 8 tokens; the others run to MaxNewTokens.
        Assert.All(batched[0].Samples, s => Assert.Equal((8, FinishReason.Length), (s.TokenIds.Count, s.FinishReason)));
        Assert.All(batched[1].Samples, s => Assert.Equal(9, s.TokenIds.Count));
    }

    [Fact]
    public void Token_id_prompts_are_fed_as_given()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 31);
        using var engine = Create(model, Options());
        var p = new SamplingParams { Temperature = 1f, TopP = 0.9f, MaxNewTokens = 6, N = 2, Seed = 8 };
        var fromText = engine.Generate(Prompts, p);
        var fromIds = engine.Generate(Prompts.Select(engine.TokenizePrompt).ToList(), p);
        Assert.Equal(Tokens(fromText), Tokens(fromIds));
        // No BOS is added to token ids: a prompt without it continues differently from one with it.
        var noBos = engine.Generate([engine.TokenizePrompt(Prompts[0])[1..]], SamplingParams.Greedy(6))[0].Samples[0];
        Assert.Equal(model.Greedy(engine.TokenizePrompt(Prompts[0])[1..], 6), noBos.TokenIds);
    }

    [Fact]
    public void Samples_carry_the_weight_version_and_follow_new_weights()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 26);
        using var engine = Create(model, Options());
        var before = engine.Generate(["v"], SamplingParams.Greedy(6))[0].Samples[0];
        Assert.Equal(0, before.WeightVersion);
        using (torch.no_grad()) model.Parameters["lm_head.weight"].mul_(-1);   // the new most likely token is the old least likely
        Assert.False(engine.IsStale);
        engine.MarkStale();
        var after = engine.Generate(["v"], SamplingParams.Greedy(6))[0].Samples[0];
        Assert.Equal(1, after.WeightVersion);
        Assert.Equal(model.Greedy(engine.TokenizePrompt("v"), 6), after.TokenIds);
        Assert.NotEqual(before.TokenIds, after.TokenIds);
    }

    [Fact]
    public void Generation_reaching_the_context_length_finishes_with_length()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 27);
        using var engine = Create(model, Options() with { ContextLength = 8 });
        var sample = engine.Generate(["abc"], SamplingParams.Greedy(50))[0].Samples[0];   // 4 prompt tokens with BOS
        Assert.Equal(FinishReason.Length, sample.FinishReason);
        Assert.Equal(5, sample.TokenIds.Count);   // positions 4..7 fed, plus the token sampled from position 7
    }

    [Fact]
    public void Kv_cache_can_be_released_and_taken_back()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 28);
        using var engine = Create(model, Options() with { ReleaseCacheAfterGenerate = true });
        var first = engine.Generate(Prompts, SamplingParams.Greedy(6));
        Assert.False(engine.HoldsCache);
        var second = engine.Generate(Prompts, SamplingParams.Greedy(6));
        Assert.Equal(Tokens(first), Tokens(second));

        using var keeping = Create(model, Options());
        keeping.Generate(Prompts, SamplingParams.Greedy(2));
        Assert.True(keeping.HoldsCache);
        keeping.ReleaseCache();
        Assert.False(keeping.HoldsCache);
        Assert.Equal(first[0].Samples[0].TokenIds, keeping.Generate([Prompts[0]], SamplingParams.Greedy(6))[0].Samples[0].TokenIds);
    }

    [Fact]
    public void Engine_state_survives_the_callers_dispose_scope()
    {
        // Users wrap steps in DisposeScopes: nothing the engine keeps (weights, cache, tables) may die with them.
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 32);
        IColocatedSampler engine;
        IReadOnlyList<Completion> first;
        using (torch.NewDisposeScope())
        {
            engine = Create(model, Options());
            first = engine.Generate(Prompts, SamplingParams.Greedy(4));
        }
        using (engine)
        using (torch.NewDisposeScope())
        {
            engine.ForceSync();
            Assert.Equal(Tokens(first), Tokens(engine.Generate(Prompts, SamplingParams.Greedy(4))));
        }
    }

    [Fact]
    public void Bad_input_is_a_clear_error()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 30);
        using var engine = Create(model, Options() with { ContextLength = 16, MaxSequences = 2, ParityCheck = ParityCheckMode.Never });
        Assert.Empty(engine.Generate([]));
        Assert.Empty(engine.Generate(Array.Empty<int[]>()));

        var tooLong = Assert.Throws<ArgumentException>(() => engine.Generate(["ok", new string('z', 40)]));
        Assert.Contains("Prompt 1", tooLong.Message);
        Assert.Contains("41", tooLong.Message);   // 40 bytes plus BOS
        Assert.Contains("16", tooLong.Message);
        var badId = Assert.Throws<ArgumentException>(() => engine.Generate([new[] { 1, 5 }, new[] { 1, ByteCodec.Size }]));
        Assert.Contains("Prompt 1", badId.Message);
        Assert.Contains(ByteCodec.Size.ToString(), badId.Message);
        Assert.Throws<ArgumentException>(() => engine.Generate([Array.Empty<int>()]));

        foreach (var p in new[]
        {
            new SamplingParams { N = 0 }, new SamplingParams { Temperature = -0.5f }, new SamplingParams { TopP = 0 },
            new SamplingParams { TopP = 1.5f }, new SamplingParams { MaxNewTokens = 0 }, new SamplingParams { TopK = -1 },
            new SamplingParams { MinP = 2 },
        })
            Assert.Throws<ArgumentException>(() => engine.Generate(["a"], p));
    }

    [Fact]
    public void Use_after_dispose_throws_object_disposed()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 33);
        var engine = Create(model, Options());
        engine.Dispose();
        engine.Dispose();   // idempotent
        Assert.Throws<ObjectDisposedException>(() => engine.Generate(["a"]));
        Assert.Throws<ObjectDisposedException>(() => engine.SyncWeights());
    }

    [Fact]
    public void Concurrent_calls_are_serialised_and_agree_with_sequential_ones()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 34);
        using var engine = Create(model, Options());
        var p = SamplingParams.Greedy(6);
        var expected = Tokens(engine.Generate(["abc", "de"], p));
        var results = new IReadOnlyList<Completion>[4];
        List<Thread>? threads = null;
        // Hold the engine's lock while the calls start, so they really overlap.
        UnderLock(engine, () =>
        {
            threads = Enumerable.Range(0, results.Length).Select(i => new Thread(() => results[i] = engine.Generate(["abc", "de"], p))).ToList();
            threads.ForEach(t => t.Start());
            Thread.Sleep(100);
            Assert.All(results, Assert.Null);   // all blocked behind the lock
        });
        threads!.ForEach(t => t.Join());
        Assert.All(results, r => Assert.Equal(expected, Tokens(r)));
    }
}

/// <summary>The contract on the llama.cpp engine.</summary>
public sealed class LlamaEngineContractTests : EngineContractTests
{
    private protected override IColocatedSampler Create(ReferenceLlama model, EngineOptions options, TrainerContext? trainer = null) =>
        model.CreateEngine(options, trainer);

    protected override void UnderLock(IColocatedSampler engine, Action action) => ((LlamaSamplingEngine)engine).UnderLock(action);
}

/// <summary>The contract on the TorchSharp engine (CPU here).</summary>
public sealed class TorchEngineContractTests : EngineContractTests
{
    private protected override IColocatedSampler Create(ReferenceLlama model, EngineOptions options, TrainerContext? trainer = null) =>
        model.CreateTorchEngine(options, trainer);

    protected override void UnderLock(IColocatedSampler engine, Action action) => ((TorchSamplingEngine)engine).UnderLock(action);
}
