using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Models;
using VectorLm.Sampling;
using VectorLm.Tokenization;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// Engine tokens/s (llama.cpp and torch) versus two plain TorchSharp generate loops on the same ~58M-parameter Llama
/// and thread count: one recomputing the whole prefix each step (a cache-less model.generate) and one with a KV cache.
/// </summary>
public sealed class SamplingBenchmark : IBenchmark
{
    public string Name => "sampling";
    public string Description => "llama.cpp and torch engine tokens/s vs naive and KV-cache TorchSharp generate at batch 1/8/32/64 (~58M params, 2 threads)";

    public BenchReport Run(string[] args)
    {
        const int threads = 2, promptTokens = 8, engineTokens = 32, kvTokens = 32, naiveTokens = 8;
        BenchSetup.Prepare(threads);
        string loadAtStart = BenchReport.LoadAverage();
        var config = new LlamaConfig
        {
            HiddenSize = 512, IntermediateSize = 1408, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 8,
            VocabSize = 32000, RmsNormEps = 1e-5, MaxPositionEmbeddings = 2048,
        };
        using var model = LlamaModel.Create(config, seed: 1);
        long parameterCount = model.parameters().Sum(p => p.numel());
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, BenchSetup.PaddedTokenizer(config.VocabSize),
            new EngineOptions { ContextLength = 128, MaxSequences = 64, BatchTokens = 512, Threads = threads, Backend = SamplingBackend.LlamaCpp });
        // The torch engine on the CPU: f32 (TorchSharp's CPU half matmuls are slow), the same slots.
        using var torchEngine = TrainerContext.SingleProcess().CreateSampler(model, BenchSetup.PaddedTokenizer(config.VocabSize),
            new EngineOptions { ContextLength = 128, MaxSequences = 64, Backend = SamplingBackend.Torch, WeightType = EngineWeightType.F32 });

        int reps = args.Length > 1 && args[0] == "--reps" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        var report = new BenchReport(Name, loadAtStart);
        foreach (int batch in new[] { 1, 8, 32, 64 })
        {
            // Prompts of exactly promptTokens tokens (BOS + bytes), different per row.
            var prompts = Enumerable.Range(0, batch).Select(i => $"p{i:D6}").ToList();
            var ids = prompts.Select(p => engine.TokenizePrompt(p)).ToList();

            double Engine(IColocatedSampler sampler)
            {
                var sw = Stopwatch.StartNew();
                var result = sampler.Generate(prompts, SamplingParams.Greedy(engineTokens));
                return result.Sum(c => c.Samples[0].TokenIds.Count) / sw.Elapsed.TotalSeconds;
            }
            engine.Generate(prompts.Take(Math.Min(batch, 2)).ToList(), SamplingParams.Greedy(4));   // warm-up
            torchEngine.Generate(prompts.Take(Math.Min(batch, 2)).ToList(), SamplingParams.Greedy(4));
            // The three loops take turns, so load that comes and goes hits each alike; medians over the rounds.
            var (llama, torchTok, kv) = (new List<double>(), new List<double>(), new List<double>());
            for (int r = 0; r < reps; r++)
            {
                llama.Add(Engine(engine));
                torchTok.Add(Engine(torchEngine));
                kv.Add(Measure(() => GenerateWithCache(model, ids, kvTokens), batch * kvTokens));
            }
            double engineTokS = Median(llama), torchTokS = Median(torchTok), kvTokS = Median(kv);
            double naiveTokS = Measure(() => GenerateNaive(model, ids, naiveTokens), batch * naiveTokens);
            report.Add(("batch", batch), ("engine_tok_s", Math.Round(engineTokS, 1)), ("naive_tok_s", Math.Round(naiveTokS, 1)),
                ("kv_cache_tok_s", Math.Round(kvTokS, 1)), ("vs_naive", Math.Round(engineTokS / naiveTokS, 1)),
                ("vs_kv_cache", Math.Round(engineTokS / kvTokS, 2)),
                ("torch_engine_tok_s", Math.Round(torchTokS, 1)), ("torch_vs_kv_cache", Math.Round(torchTokS / kvTokS, 2)),
                ("engine_range", $"{llama.Min():F0}-{llama.Max():F0}"), ("torch_range", $"{torchTok.Min():F0}-{torchTok.Max():F0}"));
        }
        report.Extra["params"] = parameterCount;
        report.Extra["threads"] = threads;
        report.Notes.Add($"{parameterCount / 1e6:F1}M params (VectorLm LlamaModel); llama.cpp engine f16 weights, torch engine f32, TorchSharp loops f32 (its KvCache for the cached loop); prompts {promptTokens} tokens; " +
            $"engine and KV-cache {engineTokens} new tokens, naive {naiveTokens}; greedy; OMP_WAIT_POLICY=PASSIVE; {threads} threads each.");
        report.Notes.Add($"engine, torch engine and KV-cache loop alternate {reps} rounds per batch (medians; *_range = min-max over the rounds); the naive loop runs once.");
        return report;
    }

    static double Median(List<double> xs)
    {
        var sorted = xs.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    static double Measure(Action generate, int tokens)
    {
        var sw = Stopwatch.StartNew();
        generate();
        return tokens / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Greedy generation recomputing the whole prefix every step (a cache-less generate loop).</summary>
    static void GenerateNaive(LlamaModel model, List<int[]> prompts, int steps)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var ids = torch.tensor(prompts.SelectMany(p => p.Select(t => (long)t)).ToArray(), [prompts.Count, prompts[0].Length]);
        for (int t = 0; t < steps; t++)
        {
            var next = model.forward(ids)[.., -1].argmax(-1, keepdim: true);
            ids = torch.cat([ids, next], 1);
        }
    }

    /// <summary>Greedy generation with the model's KV cache: prefill once, then one token per step.</summary>
    static void GenerateWithCache(LlamaModel model, List<int[]> prompts, int steps)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        using var cache = model.NewKvCache(prompts.Count, prompts[0].Length + steps);
        var ids = torch.tensor(prompts.SelectMany(p => p.Select(t => (long)t)).ToArray(), [prompts.Count, prompts[0].Length]);
        for (int t = 0; t < steps; t++)
            ids = model.forward(ids, cache)[.., -1].argmax(-1, keepdim: true);
    }
}

/// <summary>Benchmark set-up shared by the sampling and hotswap benchmarks.</summary>
internal static class BenchSetup
{
    /// <summary>Passive OpenMP waits (spinning threads starve the other loop on 2 cores) and the torch thread count.</summary>
    public static void Prepare(int threads)
    {
        NativeEnvironment.Set("OMP_WAIT_POLICY", "PASSIVE", overwrite: true);
        torch.set_num_threads(threads);
    }

    /// <summary>The byte-level vocabulary padded with placeholder merge pieces to a realistic size.</summary>
    public static Tokenizer PaddedTokenizer(int size)
    {
        var byteLevel = Tokenizer.ByteLevel();
        var pieces = byteLevel.Pieces.ToList();
        var types = byteLevel.Types.ToList();
        for (int i = pieces.Count; i < size; i++)
        {
            pieces.Add($"\u2581w{i}");
            types.Add(TokenType.Normal);
        }
        return Tokenizer.FromVocabulary(pieces, Enumerable.Range(0, size).Select(i => -(float)i).ToArray(), types);
    }
}
