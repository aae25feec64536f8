using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using TorchSharp;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// Engine tokens/s versus two plain TorchSharp generate loops on the same ~58M-parameter Llama and thread count:
/// one recomputing the whole prefix each step (a cache-less model.generate) and one with a KV cache.
/// </summary>
public sealed class SamplingBenchmark : IBenchmark
{
    public string Name => "sampling";
    public string Description => "engine tokens/s vs naive and KV-cache TorchSharp generate at batch 1/8/32/64 (~58M params, 2 threads)";

    public BenchReport Run(string[] args)
    {
        const int threads = 2, promptTokens = 8, engineTokens = 32, kvTokens = 32, naiveTokens = 8;
        BenchLlama.Prepare(threads);
        var arch = new LlamaArchitecture(32000, 512, 1408, 8, 8, 8, 64, 1e-5f, 10000f, 2048, false);
        using var model = new BenchLlama(arch, seed: 1);
        var codec = new BenchCodec(arch.VocabSize);
        using var engine = LlamaSamplingEngine.Create(TrainerContext.SingleProcess(), arch, () => model.Parameters, codec, model.ForwardAll,
            new EngineOptions { ContextLength = 128, MaxSequences = 64, BatchTokens = 512, Threads = threads });

        var report = new BenchReport(Name);
        foreach (int batch in new[] { 1, 8, 32, 64 })
        {
            // Prompts of exactly promptTokens tokens (BOS + bytes), different per row.
            var prompts = Enumerable.Range(0, batch).Select(i => $"p{i:D6}").ToList();
            var ids = prompts.Select(p => engine.TokenizePrompt(p)).ToList();

            engine.Generate(prompts.Take(Math.Min(batch, 2)).ToList(), SamplingParams.Greedy(4));   // warm-up
            var sw = Stopwatch.StartNew();
            var result = engine.Generate(prompts, SamplingParams.Greedy(engineTokens));
            double engineTokS = result.Sum(c => c.Samples[0].TokenIds.Count) / sw.Elapsed.TotalSeconds;

            double kvTokS = Measure(() => model.GenerateWithCache(ids, kvTokens), batch * kvTokens);
            double naiveTokS = Measure(() => model.GenerateNaive(ids, naiveTokens), batch * naiveTokens);
            report.Add(("batch", batch), ("engine_tok_s", Math.Round(engineTokS, 1)), ("naive_tok_s", Math.Round(naiveTokS, 1)),
                ("kv_cache_tok_s", Math.Round(kvTokS, 1)), ("vs_naive", Math.Round(engineTokS / naiveTokS, 1)),
                ("vs_kv_cache", Math.Round(engineTokS / kvTokS, 2)));
        }
        report.Extra["params"] = model.ParameterCount;
        report.Extra["threads"] = threads;
        report.Notes.Add($"{model.ParameterCount / 1e6:F1}M params; engine f16 weights, TorchSharp f32; prompts {promptTokens} tokens; " +
            $"engine and KV-cache {engineTokens} new tokens, naive {naiveTokens}; greedy; OMP_WAIT_POLICY=PASSIVE; {threads} threads each.");
        return report;
    }

    static double Measure(Action generate, int tokens)
    {
        var sw = Stopwatch.StartNew();
        generate();
        return tokens / sw.Elapsed.TotalSeconds;
    }
}

/// <summary>A byte vocabulary padded with placeholder merge pieces to a realistic vocabulary size (benchmarks only).</summary>
internal sealed class BenchCodec : ITokenCodec
{
    public BenchCodec(int size)
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) pieces.Add($"<0x{b:X2}>");
        for (int i = pieces.Count; i < size; i++) pieces.Add($"\u2581w{i}");
        Pieces = pieces;
        Scores = Enumerable.Range(0, size).Select(i => -(float)i).ToArray();
        TokenTypes = Enumerable.Range(0, size).Select(i => i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1).ToArray();
    }

    public IReadOnlyList<string> Pieces { get; }
    public IReadOnlyList<float> Scores { get; }
    public IReadOnlyList<int> TokenTypes { get; }
    public int BosId => 1;
    public int EosId => 2;
    public int UnkId => 0;
    public int[] Encode(string text) => Encoding.UTF8.GetBytes(text.Replace(' ', '\u2581')).Select(b => b + 3).ToArray();
    public string Decode(IReadOnlyList<int> ids) =>
        Encoding.UTF8.GetString(ids.Where(i => i is >= 3 and < 259).Select(i => (byte)(i - 3)).ToArray()).Replace('\u2581', ' ');
}

/// <summary>
/// A plain TorchSharp Llama (Hugging Face names, rotate-half RoPE) with the two baseline generate loops. Kept here
/// because the benchmarks must compare against a TorchSharp model with and without a KV cache.
/// </summary>
internal sealed class BenchLlama : IDisposable
{
    public BenchLlama(LlamaArchitecture arch, long seed)
    {
        Arch = arch;
        var g = new Generator((ulong)seed);
        Tensor W(params long[] shape) => torch.randn(shape, generator: g) * 0.02f;
        Tensor Ones(long n) => torch.ones(n);
        int q = arch.HeadCount * arch.HeadDim, kv = arch.KvHeadCount * arch.HeadDim;
        Parameters["model.embed_tokens.weight"] = W(arch.VocabSize, arch.HiddenSize);
        for (int i = 0; i < arch.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            Parameters[p + "input_layernorm.weight"] = Ones(arch.HiddenSize);
            Parameters[p + "self_attn.q_proj.weight"] = W(q, arch.HiddenSize);
            Parameters[p + "self_attn.k_proj.weight"] = W(kv, arch.HiddenSize);
            Parameters[p + "self_attn.v_proj.weight"] = W(kv, arch.HiddenSize);
            Parameters[p + "self_attn.o_proj.weight"] = W(arch.HiddenSize, q);
            Parameters[p + "post_attention_layernorm.weight"] = Ones(arch.HiddenSize);
            Parameters[p + "mlp.gate_proj.weight"] = W(arch.IntermediateSize, arch.HiddenSize);
            Parameters[p + "mlp.up_proj.weight"] = W(arch.IntermediateSize, arch.HiddenSize);
            Parameters[p + "mlp.down_proj.weight"] = W(arch.HiddenSize, arch.IntermediateSize);
        }
        Parameters["model.norm.weight"] = Ones(arch.HiddenSize);
        Parameters["lm_head.weight"] = W(arch.VocabSize, arch.HiddenSize);
    }

    public LlamaArchitecture Arch { get; }
    public Dictionary<string, Tensor> Parameters { get; } = new(StringComparer.Ordinal);
    public long ParameterCount => Parameters.Values.Sum(t => t.numel());

    [DllImport("libc", EntryPoint = "setenv")]
    static extern int SetNativeEnvironment(string name, string value, int overwrite);

    /// <summary>Passive OpenMP waits (spinning threads starve the other loop on 2 cores) and the thread count.</summary>
    public static void Prepare(int threads)
    {
        SetNativeEnvironment("OMP_WAIT_POLICY", "PASSIVE", 1);
        torch.set_num_threads(threads);
    }

    /// <summary>Logits [batch, seq, vocab] for all positions.</summary>
    public Tensor ForwardAll(Tensor ids) => Forward(ids, null, 0, lastOnly: false);

    /// <summary>Logits of token ids [batch, seq] at positions pos0.., appending keys/values to <paramref name="cache"/> when given.</summary>
    public Tensor Forward(Tensor ids, List<(Tensor K, Tensor V)>? cache, long pos0, bool lastOnly)
    {
        using var scope = torch.NewDisposeScope();
        var a = Arch;
        long b = ids.shape[0], s = ids.shape[1];
        var x = Parameters["model.embed_tokens.weight"].index_select(0, ids.flatten()).view(b, s, a.HiddenSize);
        var inv = torch.pow(a.RopeTheta, -torch.arange(0, a.HeadDim, 2, dtype: ScalarType.Float32) / a.HeadDim);
        var freqs = torch.outer(torch.arange(pos0, pos0 + s, dtype: ScalarType.Float32), inv);
        var emb = torch.cat([freqs, freqs], -1);
        Tensor cos = emb.cos(), sin = emb.sin();
        int half = a.HeadDim / 2;
        Tensor Rope(Tensor t) => t * cos + torch.cat([-t[.., .., .., half..], t[.., .., .., ..half]], -1) * sin;
        for (int i = 0; i < a.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            var h = RmsNorm(x, Parameters[p + "input_layernorm.weight"]);
            var q = Rope(h.matmul(Parameters[p + "self_attn.q_proj.weight"].t()).view(b, s, a.HeadCount, a.HeadDim).transpose(1, 2));
            var k = Rope(h.matmul(Parameters[p + "self_attn.k_proj.weight"].t()).view(b, s, a.KvHeadCount, a.HeadDim).transpose(1, 2));
            var v = h.matmul(Parameters[p + "self_attn.v_proj.weight"].t()).view(b, s, a.KvHeadCount, a.HeadDim).transpose(1, 2);
            if (cache is not null)
            {
                if (cache.Count > i)
                {
                    k = torch.cat([cache[i].K, k], 2);
                    v = torch.cat([cache[i].V, v], 2);
                    cache[i].K.Dispose();
                    cache[i].V.Dispose();
                    cache[i] = (k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
                }
                else cache.Add((k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope()));
            }
            var o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_casual: cache is null || cache[i].K.shape[2] == s);
            x = x + o.transpose(1, 2).reshape(b, s, a.HeadCount * a.HeadDim).matmul(Parameters[p + "self_attn.o_proj.weight"].t());
            h = RmsNorm(x, Parameters[p + "post_attention_layernorm.weight"]);
            var mlp = torch.nn.functional.silu(h.matmul(Parameters[p + "mlp.gate_proj.weight"].t())) * h.matmul(Parameters[p + "mlp.up_proj.weight"].t());
            x = x + mlp.matmul(Parameters[p + "mlp.down_proj.weight"].t());
        }
        if (lastOnly) x = x.narrow(1, s - 1, 1);
        x = RmsNorm(x, Parameters["model.norm.weight"]);
        return x.matmul(Parameters["lm_head.weight"].t()).MoveToOuterDisposeScope();
    }

    Tensor RmsNorm(Tensor x, Tensor w) => x * torch.rsqrt(x.pow(2).mean([-1], keepdim: true) + Arch.RmsNormEps) * w;

    /// <summary>Greedy generation recomputing the whole prefix every step (no cache).</summary>
    public void GenerateNaive(List<int[]> prompts, int steps)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(prompts.SelectMany(p => p.Select(t => (long)t)).ToArray(), [prompts.Count, prompts[0].Length]);
        for (int t = 0; t < steps; t++)
        {
            var next = Forward(ids, null, 0, lastOnly: true)[.., -1].argmax(-1, keepdim: true);
            ids = torch.cat([ids, next], 1);
        }
    }

    /// <summary>Greedy generation with a per-layer KV cache (prefill once, then one token per step).</summary>
    public void GenerateWithCache(List<int[]> prompts, int steps)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var cache = new List<(Tensor K, Tensor V)>();
        var ids = torch.tensor(prompts.SelectMany(p => p.Select(t => (long)t)).ToArray(), [prompts.Count, prompts[0].Length]);
        long pos = 0;
        for (int t = 0; t < steps; t++)
        {
            var next = Forward(ids, cache, pos, lastOnly: true)[.., -1].argmax(-1, keepdim: true);
            pos += ids.shape[1];
            ids = next;
        }
        foreach (var (k, v) in cache) { k.Dispose(); v.Dispose(); }
    }

    public void Dispose()
    {
        foreach (var t in Parameters.Values) t.Dispose();
    }
}
