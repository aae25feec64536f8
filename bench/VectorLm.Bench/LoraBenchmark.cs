using System.Diagnostics;
using System.Text.Json.Nodes;
using TorchSharp;
using VectorLm.Models;
using VectorLm.Sampling;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// LoRA on the ~106M hot-swap model (r = 16 on all seven projections): what an engine sync costs with a frozen base
/// and an adapter (adapter bytes only) against a full weight swap, measured alternately in one run; the file route
/// (GGUF on /dev/shm + llama_adapter_lora_init, what each sync would cost without in-place updates); and a training
/// step and the optimizer state with LoRA against full fine-tuning.
/// </summary>
public sealed class LoraBenchmark : IBenchmark
{
    public string Name => "lora";
    public string Description => "LoRA r=16: adapter sync vs full swap in the llama.cpp and torch engines, train step and optimizer state vs full (~106M, 2 threads)";

    public BenchReport Run(string[] args)
    {
        const int threads = 2, repeats = 7, rank = 16, trainSteps = 3;
        BenchSetup.Prepare(threads);
        string loadAtStart = BenchReport.LoadAverage();
        var config = new LlamaConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumHiddenLayers = 8, NumAttentionHeads = 12, NumKeyValueHeads = 12,
            VocabSize = 32000, RmsNormEps = 1e-5, MaxPositionEmbeddings = 2048,
        };
        var tokenizer = BenchSetup.PaddedTokenizer(config.VocabSize);
        var report = new BenchReport(Name, loadAtStart);
        using var model = LlamaModel.Create(config, seed: 2);
        model.AddLora(new LoraConfig { R = rank, Alpha = 2 * rank });
        using (no_grad())
            foreach (var w in model.AdapterWeights()) w.B.normal_(0, 0.01); // a trained-looking adapter, so parity means something
        model.eval();
        var baseParameters = model.BaseParameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        var ctx = TrainerContext.SingleProcess();

        foreach (var backend in new[] { SamplingBackend.LlamaCpp, SamplingBackend.Torch })
        foreach (var type in new[] { EngineWeightType.F16, EngineWeightType.F32 })
        {
            var options = new EngineOptions
            {
                Backend = backend, WeightType = type, ContextLength = 64, MaxSequences = 2, BatchTokens = 64, Threads = threads, ParityCheck = ParityCheckMode.Never,
            };
            using var loraEngine = (ColocatedSampler)ctx.CreateSampler(model, tokenizer, options);
            // The same base as full fine-tuning sees it: every weight is copied on each sync.
            using ColocatedSampler fullEngine = backend == SamplingBackend.Torch
                ? TorchSamplingEngine.Create(ctx, SamplerExtensions.Architecture(config), () => baseParameters, new TokenizerCodec(tokenizer), referenceForward: null, options)
                : LlamaSamplingEngine.Create(ctx, SamplerExtensions.Architecture(config), () => baseParameters, new TokenizerCodec(tokenizer), referenceForward: null, options);
            var parity = loraEngine.CheckParity();

            var adapterTimes = new List<double>();
            var fullTimes = new List<double>();
            for (int i = 0; i <= repeats; i++) // first round is warm-up
            {
                loraEngine.MarkStale();
                double adapter = Time(() => loraEngine.SyncWeights());
                if (loraEngine.LastSyncBytes != loraEngine.AdapterBytes)
                    throw new InvalidOperationException($"the adapter sync wrote {loraEngine.LastSyncBytes} bytes, the adapter has {loraEngine.AdapterBytes}");
                double full = Time(fullEngine.ForceSync);
                if (i == 0) continue;
                adapterTimes.Add(adapter);
                fullTimes.Add(full);
            }
            double? fileRoute = loraEngine is LlamaSamplingEngine llama
                ? Math.Round(Median(3, () => EngineLoraAdapter.Load(llama.Model, model.AdapterWeights()).Dispose()), 2) : null;
            double adapterMs = Median(adapterTimes), fullMs = Median(fullTimes);
            report.Add(("engine", backend == SamplingBackend.Torch ? "torch" : "llama.cpp"), ("dtype", type.ToString().ToLowerInvariant()), ("rank", rank),
                ("adapter_mb", Math.Round(loraEngine.AdapterBytes / 1e6, 2)), ("weight_mb", Math.Round(fullEngine.WeightBytes / 1e6, 1)),
                ("adapter_sync_ms", Math.Round(adapterMs, 3)), ("full_swap_ms", Math.Round(fullMs, 2)),
                ("full_vs_adapter", Math.Round(fullMs / adapterMs, 1)), ("adapter_file_route_ms", fileRoute),
                ("parity_relative", parity.Relative));
        }

        report.Extra["training"] = Training(config, rank, trainSteps);
        report.Notes.Add($"medians of {repeats} alternating adapter/full syncs after one warm-up round; {threads} threads; trainer weights f32 on CPU; " +
            "adapter_sync = MarkStale + SyncWeights of an engine over a model with a LoRA adapter (frozen base: adapter tensors written in place, KV cleared); " +
            "the torch engine runs on the CPU here, with the trainer's parameters as separate tensors (no flat optimizer buffer), so a sync is one copy per tensor; " +
            "full_swap = ForceSync of an engine over the same base without the adapter (every weight converted and copied); " +
            "adapter_file_route = what a sync costs through llama.cpp's file API: GGUF written to /dev/shm, llama_adapter_lora_init, values copied, adapter freed.");
        report.Notes.Add("training: batch 1 x 128 tokens, AdamW, median of the steps after one warm-up, LoRA and full steps alternating; optimizer_state_mb = size of the optimizer's saved state (2 moments per trainable parameter).");
        return report;
    }

    static JsonObject Training(LlamaConfig config, int rank, int steps)
    {
        using var lora = LlamaModel.Create(config, seed: 3);
        lora.AddLora(new LoraConfig { R = rank, Alpha = 2 * rank });
        using var full = LlamaModel.Create(config, seed: 3);
        using var loraOpt = Optimizers.AdamW(lora, 1e-4);
        using var fullOpt = Optimizers.AdamW(full, 1e-4);
        var g = new Generator(7);
        using var ids = randint(3, config.VocabSize, [1, 129], generator: g);
        using var input = ids.narrow(1, 0, 128).contiguous();
        using var labels = ids.narrow(1, 1, 128).contiguous();
        double Step(LlamaModel m, optim.Optimizer opt) => Time(() =>
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            m.Loss(input, labels).backward();
            opt.step();
        });
        var loraTimes = new List<double>();
        var fullTimes = new List<double>();
        for (int i = 0; i <= steps; i++)
        {
            double l = Step(lora, loraOpt), f = Step(full, fullOpt);
            if (i == 0) continue;
            loraTimes.Add(l);
            fullTimes.Add(f);
        }
        long Trainable(LlamaModel m) => m.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        return new JsonObject
        {
            ["rank"] = rank,
            ["lora_step_ms"] = Math.Round(Median(loraTimes), 1),
            ["full_step_ms"] = Math.Round(Median(fullTimes), 1),
            ["lora_trainable_params"] = Trainable(lora),
            ["full_trainable_params"] = Trainable(full),
            ["lora_optimizer_state_mb"] = Math.Round(StateBytes(loraOpt) / 1e6, 2),
            ["full_optimizer_state_mb"] = Math.Round(StateBytes(fullOpt) / 1e6, 2),
        };
    }

    static long StateBytes(TorchSharp.Modules.AdamW optimizer)
    {
        string file = Path.Combine(Path.GetTempPath(), $"vectorlm-lora-bench-{Environment.ProcessId}.bin");
        try
        {
            optimizer.save_state_dict(file);
            return new FileInfo(file).Length;
        }
        finally { File.Delete(file); }
    }

    static double Time(Action action)
    {
        var sw = Stopwatch.StartNew();
        action();
        return sw.Elapsed.TotalMilliseconds;
    }

    static double Median(int repeats, Action action)
    {
        action();
        return Median(Enumerable.Range(0, repeats).Select(_ => Time(action)).ToList());
    }

    static double Median(List<double> times)
    {
        var sorted = times.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}
