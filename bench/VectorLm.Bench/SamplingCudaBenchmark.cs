using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using TorchSharp;
using VectorLm.Models;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// The torch sampling engine on a GPU: tokens/s for the 349M Llama of issue 9 (vocab 32,000 and 259, prompts of 32
/// tokens, 256 new tokens, temperature 1, top-p 0.95) at batches 1/8/64/256, the weight swap against a device memcpy of
/// the same bytes, and the KV cache memory a release returns. It also saves each model as a Hugging Face folder and the
/// prompts as JSON, so bench/gpu/sampling_hf.py can run transformers' generate on the same weights (bench/gpu/sampling.sh
/// runs both and merges the rows).
/// </summary>
public sealed class SamplingCudaBenchmark : IBenchmark
{
    public string Name => "sampling-cuda";
    public string Description => "torch engine tok/s on CUDA (349M, vocab 32000/259, batches 1-256), swap vs memcpy, cache release; --export DIR for HF; --engine-only: no export, no LoRA rows";

    const int PromptTokens = 32;

    public BenchReport Run(string[] args)
    {
        string? Arg(string name) { int i = Array.IndexOf(args, name); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }
        var device = torch.device(Arg("--device") ?? "cuda");
        string export = Arg("--export") ?? Path.Combine(Path.GetTempPath(), "vectorlm-sampling-cuda");
        int newTokens = int.Parse(Arg("--new") ?? "256");
        var batches = (Arg("--batches") ?? "1,8,64,256").Split(',').Select(int.Parse).ToArray();
        var vocabs = (Arg("--vocabs") ?? "32000,259").Split(',').Select(int.Parse).ToArray();
        bool small = args.Contains("--small");   // a tiny config: a CPU smoke test of this benchmark
        int repeats = int.Parse(Arg("--repeats") ?? "3");
        bool releaseOnly = args.Contains("--release-only");   // only the cache release (run with PYTORCH_NO_CUDA_MEMORY_CACHING=1)
        bool engineOnly = args.Contains("--engine-only");     // no HF export, no LoRA rows: engine tok/s, swap and cache release

        var report = new BenchReport(Name);
        var prompts = new Dictionary<string, int[][]>();
        int maxBatch = batches.Max();
        foreach (int vocab in vocabs)
        {
            var config = small
                ? new LlamaConfig { HiddenSize = 64, IntermediateSize = 128, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, VocabSize = vocab, MaxPositionEmbeddings = 512 }
                : new LlamaConfig { HiddenSize = 1024, IntermediateSize = 2816, NumHiddenLayers = 24, NumAttentionHeads = 16, NumKeyValueHeads = 8, VocabSize = vocab, MaxPositionEmbeddings = 2048 };
            using var model = LlamaModel.Create(config, device, seed: 1);
            long parameterCount = model.parameters().Sum(p => p.numel());
            string folder = Path.Combine(export, $"vocab{vocab}");
            if (!releaseOnly && !engineOnly) model.SaveTo(folder, ScalarType.BFloat16);

            // Prompts of exactly 32 ids, drawn past the special tokens; the same ones go to the HF script.
            var rng = new Random(vocab);
            var ids = Enumerable.Range(0, maxBatch).Select(_ => Enumerable.Range(0, PromptTokens).Select(_ => rng.Next(3, vocab)).ToArray()).ToArray();
            prompts[$"vocab{vocab}"] = ids;

            var options = new EngineOptions
            {
                Backend = SamplingBackend.Torch, WeightType = EngineWeightType.BF16, MaxSequences = maxBatch,
                ContextLength = PromptTokens + newTokens, DecodeChunk = int.Parse(Arg("--chunk") ?? "32"),
            };
            using var engine = (TorchSamplingEngine)TrainerContext.SingleProcess().CreateSampler(model, BenchSetup.PaddedTokenizer(vocab), options);
            var p = new SamplingParams { Temperature = 1f, TopP = 0.95f, MaxNewTokens = newTokens, IgnoreEos = true, Seed = 7 };
            long cacheBytes = 2L * config.NumHiddenLayers * maxBatch * config.NumKeyValueHeads * options.ContextLength!.Value * config.HeadDim * 2;
            if (releaseOnly)
            {
                report.Extra["cache_release"] = MeasureRelease(engine, ids.ToList(), p with { MaxNewTokens = 4 }, device, cacheBytes);
                return report;
            }
            var parity = engine.CheckParity();
            foreach (int batch in batches)
            {
                var (tokens, seconds) = TimeGenerate(engine, ids.Take(batch).ToList(), p, device, repeats);
                double median = seconds.Order().ElementAt(seconds.Count / 2);
                report.Add(("batch", batch), ("vocab", vocab), ("engine_tok_s", Math.Round(tokens / median, 1)),
                    ("engine_ms_per_step", Math.Round(median * 1000 / newTokens, 2)), ("tokens", tokens));
                Console.WriteLine($"vocab {vocab} batch {batch}: {tokens / median:F1} tok/s ({string.Join(", ", seconds.Select(s => s.ToString("F3")))} s)");
            }
            if (vocab == vocabs[0])
            {
                report.Extra["params"] = parameterCount;
                report.Extra["swap"] = MeasureSwap(engine, model, device, parameterCount, ids.Take(maxBatch).ToList(), p);
                report.Extra["parity"] = JsonSerializer.SerializeToNode(new { parity.MaxAbsDiff, parity.LogitScale, parity.Relative, parity.Tolerance });
                report.Extra["cache_release"] = MeasureRelease(engine, ids.ToList(), p with { MaxNewTokens = 4 }, device, cacheBytes);
                engine.ReleaseCache();
                if (!engineOnly) report.Extra["lora"] = MeasureLora(model, options, ids, p, batches.Where(b => b >= 64).ToArray(), device, repeats);
            }
        }
        if (!engineOnly)
        {
            File.WriteAllText(Path.Combine(export, "prompts.json"), JsonSerializer.Serialize(prompts));
            report.Extra["export"] = export;
        }
        report.Extra["device"] = device.ToString();
        report.Notes.Add($"Torch engine, bf16 weights and KV cache, {maxBatch} slots, context {PromptTokens + newTokens}, DecodeChunk {Arg("--chunk") ?? "32"}; " +
            $"prompts {PromptTokens} token ids, {newTokens} new tokens (IgnoreEos), temperature 1, top-p 0.95 (top-p over the 1024 most likely tokens); " +
            $"median of {repeats} timed Generate calls after a warm-up, wall clock including prefill and host reads.");
        return report;
    }

    /// <summary>Tokens of one Generate of <paramref name="prompts"/> and the seconds of each of <paramref name="repeats"/> timed calls, after a short warm-up.</summary>
    static (int Tokens, List<double> Seconds) TimeGenerate(TorchSamplingEngine engine, List<int[]> prompts, SamplingParams p, Device device, int repeats)
    {
        engine.Generate(prompts, p with { MaxNewTokens = 8 });   // warm-up (allocator, kernels)
        var seconds = new List<double>();
        int tokens = 0;
        for (int r = 0; r < repeats; r++)
        {
            Synchronize(device);
            var sw = Stopwatch.StartNew();
            var result = engine.Generate(prompts, p with { Seed = (ulong)r });
            seconds.Add(sw.Elapsed.TotalSeconds);
            tokens = result.Sum(c => c.Samples.Sum(s => s.TokenIds.Count));
        }
        return (tokens, seconds);
    }

    static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
    }

    /// <summary>
    /// Median ForceSync against a device copy of the engine's bytes, for a trainer whose parameters are (1) separate
    /// tensors, f32: one casting copy per tensor; (2) in FlatAdamW's flat buffers, f32 masters
    /// (bf16-mixed): one casting copy per block; (3) in flat buffers, bf16 (bf16-true): the engine reads the weight
    /// matrices in place, only the norm vectors are copied. The engine is bf16 throughout. Each row has its copy
    /// kernels and the parity gate's verdict after it; the host's share of a swap is measured apart (the parameter
    /// dictionary, the plan check). Decoding from the trainer's buffers (bf16-true) is timed at the largest batch.
    /// </summary>
    static System.Text.Json.Nodes.JsonNode? MeasureSwap(TorchSamplingEngine engine, LlamaModel model, Device device, long parameterCount,
        List<int[]> prompts, SamplingParams p)
    {
        // 50 calls first: a training loop syncs every step, so the host code is measured once the JIT has optimised it.
        double Median(Action action)
        {
            for (int i = 0; i < 50; i++) action();
            var ms = new List<double>();
            for (int i = 0; i < 15; i++)
            {
                Synchronize(device);
                var sw = Stopwatch.StartNew();
                action();
                Synchronize(device);
                ms.Add(sw.Elapsed.TotalMilliseconds);
            }
            return Math.Round(ms.Order().ElementAt(ms.Count / 2), 3);
        }
        double memcpy;
        using (var src = empty(engine.WeightBytes / 2, ScalarType.BFloat16, device))
        using (var dst = empty(engine.WeightBytes / 2, ScalarType.BFloat16, device))
            memcpy = Median(() => dst.copy_(src));
        var rows = new Dictionary<string, object>();
        void Row(string name, string trainer)
        {
            double ms = Median(engine.ForceSync);
            rows[name] = new Dictionary<string, object>
            {
                ["trainer"] = trainer, ["swap_ms"] = ms, ["vs_memcpy"] = Math.Round(ms / memcpy, 2),
                ["copy_kernels"] = engine.LastSyncCopyKernels, ["bytes_copied"] = engine.LastSyncBytes, ["bytes_read_in_place"] = engine.AliasedBytes,
                ["parity_relative"] = engine.CheckParity().Relative,   // throws past the tolerance: a wrong swap stops the run
            };
        }
        Row("separate_tensors", "f32 parameters as separate tensors (no FlatAdamW): one casting copy per tensor");
        double parametersMs, namedParametersMs, planCheckMs;
        using (var optimizer = Training.Optimizers.AdamW(model, 1e-4))   // f32 masters re-pointed into flat buffers
        {
            Row("bf16_mixed", "f32 masters in FlatAdamW's flat buffers (bf16-mixed): one casting copy per block");
            // The host's share of a swap: the model's parameter dictionary (kept between syncs, checked by a name-free
            // walk of the module tree; built through named_parameters as before, for comparison), then the check of
            // every block's plan.
            parametersMs = Median(() => SamplerExtensions.Parameters(model));
            namedParametersMs = Median(() => model.BaseParameters().ToDictionary(p => p.name, p => (Tensor)p.parameter));
            var parameters = SamplerExtensions.Parameters(model);
            planCheckMs = Median(() => engine.Decoder.Prepare(parameters));
        }
        model.to(ScalarType.BFloat16);
        using (var optimizer = Training.Optimizers.AdamW(model, 1e-4))   // bf16 parameters in flat buffers
        {
            Row("bf16_true", "bf16 parameters in FlatAdamW's flat buffers (bf16-true): matrices read in place, norms copied");
            var (tokens, seconds) = TimeGenerate(engine, prompts, p, device, 3);
            ((Dictionary<string, object>)rows["bf16_true"])[$"decode_tok_s_batch_{prompts.Count}"] = Math.Round(tokens / seconds.Order().ElementAt(1), 1);
        }
        model.to(ScalarType.Float32);
        var mixed = (Dictionary<string, object>)rows["bf16_mixed"];
        var bf16True = (Dictionary<string, object>)rows["bf16_true"];
        var separate = (Dictionary<string, object>)rows["separate_tensors"];
        return JsonSerializer.SerializeToNode(new Dictionary<string, object>
        {
            ["params"] = parameterCount, ["engine_bytes"] = engine.WeightBytes, ["memcpy_ms"] = memcpy,
            ["swap_ms"] = mixed["swap_ms"], ["swap_vs_memcpy"] = mixed["vs_memcpy"],
            ["swap_ms_bf16_trainer"] = bf16True["swap_ms"], ["swap_bf16_vs_memcpy"] = bf16True["vs_memcpy"],
            ["swap_ms_separate_tensors"] = separate["swap_ms"], ["swap_separate_vs_memcpy"] = separate["vs_memcpy"],
            ["rows"] = rows,
            ["host_parameters_ms"] = parametersMs, ["host_named_parameters_ms"] = namedParametersMs, ["host_plan_check_ms"] = planCheckMs,
            ["cases"] = "swap_ms: f32 masters (bf16-mixed) in FlatAdamW's flat buffers -> bf16 engine, a casting copy (reads 4 and writes 2 bytes " +
                "per weight against memcpy's 2 + 2: its bandwidth floor is ~1.5x memcpy); swap_ms_bf16_trainer: bf16 parameters (bf16-true) in flat " +
                "buffers -> bf16 engine, which reads the weight matrices in place: the swap is the host's check plus the norm copies; " +
                "swap_ms_separate_tensors: f32 parameters as separate tensors (no FlatAdamW); memcpy_ms: one device-to-device copy of the engine's " +
                "bytes; medians of 15 after 50 untimed calls, device synchronised around each. host_parameters_ms: the parameter dictionary the engine " +
                "reads at each sync (kept, checked by a name-free walk); host_named_parameters_ms: the same built through named_parameters.",
        });
    }

    /// <summary>
    /// A LoRA adapter (r = 16 on all seven projections, trained-looking B) on the same model, in FlatAdamW's flat
    /// buffer, applied unmerged (adapter-only sync) and merged (fresh base + folded adapter at each sync): the parity
    /// gate over base + adapter, sync time and decode tok/s of each.
    /// </summary>
    static System.Text.Json.Nodes.JsonNode? MeasureLora(LlamaModel model, EngineOptions options, int[][] ids, SamplingParams p, int[] batches, Device device, int repeats)
    {
        const int rank = 16;
        model.AddLora(new LoraConfig { R = rank, Alpha = 2 * rank });
        using (no_grad())
            foreach (var w in model.AdapterWeights()) w.B.normal_(0, 0.01);
        model.eval();
        using var optimizer = Training.Optimizers.AdamW(model, 1e-4);   // the adapter's parameters in flat buffers
        var modes = new System.Text.Json.Nodes.JsonArray();
        foreach (bool merge in new[] { false, true })
        {
            using var engine = (TorchSamplingEngine)TrainerContext.SingleProcess().CreateSampler(model,
                BenchSetup.PaddedTokenizer(model.Config.VocabSize), options with { MergeLoraOnSync = merge });
            var parity = engine.CheckParity();
            var sync = new List<double>();
            for (int i = 0; i < 16; i++)
            {
                engine.MarkStale();
                Synchronize(device);
                var sw = Stopwatch.StartNew();
                engine.SyncWeights();
                Synchronize(device);
                if (i > 0) sync.Add(sw.Elapsed.TotalMilliseconds);
            }
            if (!merge && engine.LastSyncBytes != engine.AdapterBytes)
                throw new InvalidOperationException($"the adapter sync wrote {engine.LastSyncBytes} bytes, the adapter has {engine.AdapterBytes}");
            var row = new System.Text.Json.Nodes.JsonObject
            {
                ["merged"] = merge, ["sync_ms"] = Math.Round(sync.Order().ElementAt(sync.Count / 2), 3), ["sync_bytes"] = engine.LastSyncBytes,
                ["sync_copy_kernels"] = engine.LastSyncCopyKernels, ["parity_relative"] = parity.Relative,
            };
            foreach (int batch in batches)
            {
                var prompts = ids.Take(batch).ToList();
                engine.Generate(prompts, p with { MaxNewTokens = 8 });
                var seconds = new List<double>();
                int tokens = 0;
                for (int r = 0; r < repeats; r++)
                {
                    Synchronize(device);
                    var sw = Stopwatch.StartNew();
                    tokens = engine.Generate(prompts, p with { Seed = (ulong)r }).Sum(c => c.Samples.Sum(s => s.TokenIds.Count));
                    seconds.Add(sw.Elapsed.TotalSeconds);
                }
                row[$"tok_s_batch_{batch}"] = Math.Round(tokens / seconds.Order().ElementAt(seconds.Count / 2), 1);
            }
            engine.ReleaseCache();
            modes.Add(row);
        }
        return JsonSerializer.SerializeToNode(new Dictionary<string, object>
        {
            ["rank"] = rank, ["targets"] = "q,k,v,o,gate,up,down", ["modes"] = modes,
            ["note"] = "sync = MarkStale + SyncWeights after the model's steps, median of 15 after a warm-up, device synchronised; merged = false: " +
                "the frozen base stays, only the adapter's tensors are copied and decoding adds B(A x) (two matmuls per projection group); merged = true " +
                "(the default on CUDA): the base is copied in again and W + scale*B*A folded into it (one bmm per group), decoding at the base's speed. " +
                "Compare sync_ms with swap.swap_ms and tok/s with the rows of the same batch.",
        });
    }

    /// <summary>Device memory (cudaMemGetInfo) around ReleaseCache; with PYTORCH_NO_CUDA_MEMORY_CACHING=1 it reaches the driver.</summary>
    static System.Text.Json.Nodes.JsonNode? MeasureRelease(TorchSamplingEngine engine, List<int[]> prompts, SamplingParams p, Device device, long cacheBytes)
    {
        engine.Generate(prompts, p);
        Synchronize(device);
        long held = CudaFreeBytes();
        engine.ReleaseCache();
        Synchronize(device);
        long released = CudaFreeBytes();
        engine.Generate(prompts, p);   // takes it back
        Synchronize(device);
        long retaken = CudaFreeBytes();
        return JsonSerializer.SerializeToNode(new Dictionary<string, object>
        {
            ["free_bytes_holding_cache"] = held, ["free_bytes_after_release"] = released, ["free_bytes_after_next_generate"] = retaken,
            ["returned_bytes"] = released - held, ["cache_bytes"] = cacheBytes, ["caching_allocator"] = Environment.GetEnvironmentVariable("PYTORCH_NO_CUDA_MEMORY_CACHING") != "1",
        });
    }

    static long CudaFreeBytes()
    {
        foreach (var name in new[] { "libcudart.so.13", "libcudart.so.12", "libcudart.so" })
            if (NativeLibrary.TryLoad(name, out var lib) && NativeLibrary.TryGetExport(lib, "cudaMemGetInfo", out var fn))
                unsafe
                {
                    nuint free, total;
                    int rc = ((delegate* unmanaged<nuint*, nuint*, int>)fn)(&free, &total);
                    return rc == 0 ? (long)free : -rc;
                }
        return -1;
    }
}
