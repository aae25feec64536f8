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
/// Each batch also shows the engine <see cref="SamplingBackend.Auto"/> builds for a sampler of that many slots, and the
/// f32 matmul ceiling of the workload on this machine (<see cref="MatmulRoofline"/>): the tok/s no f32 engine can pass.
/// </summary>
public sealed class SamplingBenchmark : IBenchmark
{
    public string Name => "sampling";
    public string Description => "llama.cpp and torch engine tokens/s vs naive and KV-cache TorchSharp generate at batch 1/8/16/32/64 (~58M params, 2 threads), Auto's pick and the f32 matmul ceiling";

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
        // Each engine with its default weight type (llama.cpp f16, the torch engine f32 on the CPU), the same slots.
        using var engine = TrainerContext.SingleProcess().CreateSampler(model, BenchSetup.PaddedTokenizer(config.VocabSize),
            new EngineOptions { ContextLength = 128, MaxSequences = 64, BatchTokens = 512, Threads = threads, Backend = SamplingBackend.LlamaCpp });
        using var torchEngine = TrainerContext.SingleProcess().CreateSampler(model, BenchSetup.PaddedTokenizer(config.VocabSize),
            new EngineOptions { ContextLength = 128, MaxSequences = 64, Backend = SamplingBackend.Torch });
        using var roofline = new MatmulRoofline(config);

        int reps = args.Length > 1 && args[0] == "--reps" ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 3;
        var report = new BenchReport(Name, loadAtStart);
        foreach (int batch in new[] { 1, 8, 16, 32, 64 })
        {
            // Prompts of exactly promptTokens tokens (BOS + bytes), different per row.
            var prompts = Enumerable.Range(0, batch).Select(i => $"p{i:D6}").ToList();
            var ids = prompts.Select(p => engine.TokenizePrompt(p)).ToList();

            double Engine(IColocatedSampler sampler, List<double>? cpu = null)
            {
                int tokens = 0;
                return Measure(() => tokens = sampler.Generate(prompts, SamplingParams.Greedy(engineTokens)).Sum(c => c.Samples[0].TokenIds.Count), () => tokens, cpu);
            }
            engine.Generate(prompts.Take(Math.Min(batch, 2)).ToList(), SamplingParams.Greedy(4));   // warm-up
            torchEngine.Generate(prompts.Take(Math.Min(batch, 2)).ToList(), SamplingParams.Greedy(4));
            // The three loops take turns, so load that comes and goes hits each alike; medians over the rounds.
            var (llama, torchTok, kv) = (new List<double>(), new List<double>(), new List<double>());
            var (torchCpu, kvCpu) = (new List<double>(), new List<double>());
            for (int r = 0; r < reps; r++)
            {
                llama.Add(Engine(engine));
                torchTok.Add(Engine(torchEngine, torchCpu));
                kv.Add(Measure(() => GenerateWithCache(model, ids, kvTokens), () => batch * kvTokens, kvCpu));
            }
            double engineTokS = Median(llama), torchTokS = Median(torchTok), kvTokS = Median(kv);
            double naiveTokS = Measure(() => GenerateNaive(model, ids, naiveTokens), () => batch * naiveTokens);
            var ceiling = roofline.Measure(batch, promptTokens, engineTokens);
            // The engine Auto builds for a CPU sampler sized for this batch (MaxSequences = batch).
            var auto = SamplerExtensions.ResolveBackend(SamplingBackend.Auto, torch.CPU, batch);
            double autoTokS = auto == SamplingBackend.Torch ? torchTokS : engineTokS;
            report.Add(("batch", batch), ("engine_tok_s", Math.Round(engineTokS, 1)), ("naive_tok_s", Math.Round(naiveTokS, 1)),
                ("kv_cache_tok_s", Math.Round(kvTokS, 1)), ("vs_naive", Math.Round(engineTokS / naiveTokS, 1)),
                ("vs_kv_cache", Math.Round(engineTokS / kvTokS, 2)),
                ("torch_engine_tok_s", Math.Round(torchTokS, 1)), ("torch_vs_kv_cache", Math.Round(torchTokS / kvTokS, 2)),
                ("auto", auto == SamplingBackend.Torch ? "torch" : "llama.cpp"), ("auto_vs_kv_cache", Math.Round(autoTokS / kvTokS, 2)),
                ("f32_ceiling_tok_s", Math.Round(ceiling.TokS, 0)), ("ceiling_vs_kv_cache", Math.Round(ceiling.TokS / kvTokS, 2)),
                ("torch_of_ceiling", Math.Round(torchTokS / ceiling.TokS, 2)), ("kv_of_ceiling", Math.Round(kvTokS / ceiling.TokS, 2)),
                ("step_matmul_gflop_s", Math.Round(ceiling.StepGflops, 1)),
                ("torch_cpu_of_ceiling", Math.Round(ceiling.CpuSeconds / Median(torchCpu), 2)), ("kv_cpu_of_ceiling", Math.Round(ceiling.CpuSeconds / Median(kvCpu), 2)),
                ("engine_range", $"{llama.Min():F0}-{llama.Max():F0}"), ("torch_range", $"{torchTok.Min():F0}-{torchTok.Max():F0}"));
        }
        report.Extra["params"] = parameterCount;
        report.Extra["threads"] = threads;
        report.Extra["matmul_flop_per_token"] = roofline.FlopPerToken;
        report.Extra["ceiling_faster_layouts"] = roofline.FasterLayouts;
        report.Extra["cpu_torch_min_sequences"] = SamplerExtensions.CpuTorchMinSequences;
        report.Notes.Add($"{parameterCount / 1e6:F1}M params (VectorLm LlamaModel); llama.cpp engine f16 weights, torch engine f32 (the defaults), TorchSharp loops f32 (its KvCache for the cached loop); prompts {promptTokens} tokens; " +
            $"engine and KV-cache {engineTokens} new tokens, naive {naiveTokens}; greedy; OMP_WAIT_POLICY=PASSIVE; {threads} threads each.");
        report.Notes.Add($"engine, torch engine and KV-cache loop alternate {reps} rounds per batch (medians; *_range = min-max over the rounds); the naive loop runs once.");
        report.Notes.Add($"auto: the engine SamplingBackend.Auto builds on the CPU for a sampler of MaxSequences = batch (torch from {SamplerExtensions.CpuTorchMinSequences} slots); auto_vs_kv_cache is that engine's tok/s over the KV-cache loop's.");
        report.Notes.Add($"f32_ceiling_tok_s: new tokens / the time of the workload's matmuls alone ([rows, in] x [in, out] f32, {threads} threads, fused QKV and gate/up, one weight set per layer, best of two weight layouts, fastest of 4 timed passes): " +
            $"one prefill of batch x {promptTokens} rows through the layers, then {engineTokens} head matmuls and {engineTokens - 1} decode steps of batch rows; attention, norms and sampling counted as free. " +
            $"{roofline.FlopPerToken / 1e6:F1} MFLOP of matmul per decoded token; step_matmul_gflop_s = the decode step's matmul throughput at that batch. No f32 engine can pass the ceiling on this machine.");
        report.Notes.Add("*_cpu_of_ceiling: the same comparison in process CPU time (the workload's matmuls' CPU-seconds over the loop's, medians), which a loaded machine distorts far less than wall time.");
        return report;
    }

    static double Median(List<double> xs)
    {
        var sorted = xs.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>Tokens per second of <paramref name="generate"/>; its process CPU-seconds go to <paramref name="cpu"/> when given.</summary>
    static double Measure(Action generate, Func<int> tokens, List<double>? cpu = null)
    {
        var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        generate();
        double seconds = sw.Elapsed.TotalSeconds;
        process.Refresh();
        cpu?.Add((process.TotalProcessorTime - cpuBefore).TotalSeconds);
        return tokens() / seconds;
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

/// <summary>
/// The f32 matmul roofline of decoding a Llama on this machine: the model's weight matmuls (fused QKV and gate/up, one
/// set of weights per layer, so they stream from memory as in decoding) timed as a pass over all layers at a given
/// number of rows, and the head, with the torch threads set. Attention, norms, activations and sampling are left out,
/// so no f32 engine decodes faster than this.
/// </summary>
sealed class MatmulRoofline : IDisposable
{
    readonly LlamaConfig _config;
    readonly Dictionary<(long Rows, bool Head), (double Wall, double Cpu)> _seconds = new();
    // Per weight layout: the right operands of x·W per layer and shape, and the head's. "transposed": stored [out, in]
    // as the trainer keeps them, used through a transposed view; "plain": stored [in, out].
    readonly (string Name, Tensor[][] Layers, Tensor Head)[] _layouts;
    readonly List<Tensor> _owned = new();

    public MatmulRoofline(LlamaConfig config)
    {
        _config = config;
        using var _ = torch.no_grad();
        var generator = new torch.Generator(7);
        Tensor Keep(Tensor t) { _owned.Add(t.DetachFromDisposeScope()); return t; }
        var stored = Enumerable.Range(0, config.NumHiddenLayers)
            .Select(_ => LayerShapes.Select(s => Keep(torch.randn([s.Out, s.In], generator: generator).mul_(0.02f))).ToArray()).ToArray();
        var head = Keep(torch.randn([config.VocabSize, config.HiddenSize], generator: generator).mul_(0.02f));
        _layouts =
        [
            ("transposed", stored.Select(l => l.Select(w => Keep(w.t())).ToArray()).ToArray(), Keep(head.t())),
            ("plain", stored.Select(l => l.Select(w => Keep(w.t().contiguous())).ToArray()).ToArray(), Keep(head.t().contiguous())),
        ];
    }

    /// <summary>(in, out) of one layer's matmuls with fused QKV and gate/up, as an engine lays them out.</summary>
    (long In, long Out)[] LayerShapes =>
    [
        (_config.HiddenSize, (_config.NumAttentionHeads + 2L * _config.NumKeyValueHeads) * _config.HeadDim),
        ((long)_config.NumAttentionHeads * _config.HeadDim, _config.HiddenSize),
        (_config.HiddenSize, 2L * _config.IntermediateSize),
        (_config.IntermediateSize, _config.HiddenSize),
    ];

    /// <summary>Multiply-adds times two of the layers' and the head's matmuls for one token.</summary>
    public long FlopPerToken => 2 * (_config.NumHiddenLayers * LayerShapes.Sum(s => s.In * s.Out) + (long)_config.HiddenSize * _config.VocabSize);

    /// <summary>The faster weight layout of each timed pass ("layers@ROWS" or "head@ROWS").</summary>
    public string FasterLayouts => string.Join(", ", _fasterLayout);
    readonly List<string> _fasterLayout = new();

    /// <summary>
    /// The ceiling of a generate of <paramref name="batch"/> prompts of <paramref name="promptTokens"/> tokens and
    /// <paramref name="newTokens"/> new ones (new tokens per second of matmul time), the decode step's GFLOP/s and the
    /// workload's matmuls' process CPU-seconds.
    /// </summary>
    public (double TokS, double StepGflops, double CpuSeconds) Measure(int batch, int promptTokens, int newTokens)
    {
        var head = Seconds(batch, head: true);
        var step = Sum([Seconds(batch, head: false), head], 1);
        var total = Sum([Seconds((long)batch * promptTokens, head: false), head, Sum([step], newTokens - 1)], 1);
        return (batch * newTokens / total.Wall, FlopPerToken * batch / step.Wall / 1e9, total.Cpu);
    }

    static (double Wall, double Cpu) Sum(IEnumerable<(double Wall, double Cpu)> parts, int times) =>
        (times * parts.Sum(p => p.Wall), times * parts.Sum(p => p.Cpu));

    /// <summary>
    /// Fastest wall time of one pass (all layers' matmuls at <paramref name="rows"/> rows, or the head's) over timed
    /// passes, and its process CPU time per pass (over all passes: the clock ticks are coarse); the better layout.
    /// </summary>
    (double Wall, double Cpu) Seconds(long rows, bool head)
    {
        if (_seconds.TryGetValue((rows, head), out var cached)) return cached;
        using var _ = torch.no_grad();
        var generator = new torch.Generator(8);
        using var x = torch.randn([rows, _config.HiddenSize], generator: generator).mul_(0.02f);
        using var act = torch.randn([rows, _config.IntermediateSize], generator: generator).mul_(0.02f);
        var process = Process.GetCurrentProcess();
        (double Wall, double Cpu) best = (double.MaxValue, double.MaxValue);
        string faster = "";
        foreach (var (name, layers, headWeight) in _layouts)
        {
            void Pass()
            {
                using var scope = torch.NewDisposeScope();
                if (head) { x.matmul(headWeight); return; }
                foreach (var w in layers)
                    for (int i = 0; i < w.Length; i++) (i == 3 ? act : x).matmul(w[i]);   // the down projection reads the activation
            }
            Pass();   // warm-up
            const int passes = 4;
            double wall = double.MaxValue;
            process.Refresh();
            var cpuBefore = process.TotalProcessorTime;
            for (int p = 0; p < passes; p++)
            {
                var sw = Stopwatch.StartNew();
                Pass();
                wall = Math.Min(wall, sw.Elapsed.TotalSeconds);
            }
            process.Refresh();
            double cpu = (process.TotalProcessorTime - cpuBefore).TotalSeconds / passes;
            if (wall < best.Wall) faster = name;
            best = (Math.Min(wall, best.Wall), Math.Min(cpu, best.Cpu));
        }
        _fasterLayout.Add($"{(head ? "head" : "layers")}@{rows}: {faster}");
        return _seconds[(rows, head)] = best;
    }

    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
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
