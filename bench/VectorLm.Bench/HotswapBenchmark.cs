using System.Diagnostics;
using TorchSharp;
using VectorLm.Models;
using VectorLm.Native;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// Cost of putting new trainer weights into the engine, ~106M parameters, f16 and f32: in-place swap versus a rebuild
/// with llama_model_init_from_user, a .gguf write plus reload, and a plain memcpy of the engine's weight bytes.
/// </summary>
public sealed class HotswapBenchmark : IBenchmark
{
    public string Name => "hotswap";
    public string Description => "in-place weight swap vs rebuild, gguf file reload and memcpy (~106M params, f16/f32, 2 threads)";

    public unsafe BenchReport Run(string[] args)
    {
        const int threads = 2, repeats = 5;
        BenchSetup.Prepare(threads);
        string loadAtStart = BenchReport.LoadAverage();
        var config = new LlamaConfig
        {
            HiddenSize = 768, IntermediateSize = 2048, NumHiddenLayers = 8, NumAttentionHeads = 12, NumKeyValueHeads = 12,
            VocabSize = 32000, RmsNormEps = 1e-5, MaxPositionEmbeddings = 2048,
        };
        using var model = LlamaModel.Create(config, seed: 2);
        long parameterCount = model.parameters().Sum(p => p.numel());
        var arch = SamplerExtensions.Architecture(config);
        var tokenizer = BenchSetup.PaddedTokenizer(config.VocabSize);
        var codec = new TokenizerCodec(tokenizer);
        var parameters = model.named_parameters().ToDictionary(p => p.name, p => p.parameter as Tensor, StringComparer.Ordinal);
        var report = new BenchReport(Name, loadAtStart);
        string file = Path.Combine(Path.GetTempPath(), $"vectorlm-hotswap-{Environment.ProcessId}.gguf");
        try
        {
            foreach (var type in new[] { EngineWeightType.F16, EngineWeightType.F32 })
            {
                var options = new EngineOptions { WeightType = type, ContextLength = 64, MaxSequences = 2, BatchTokens = 64, Threads = threads,
                    ParityCheck = ParityCheckMode.Never, Backend = SamplingBackend.LlamaCpp };
                using var engine = (LlamaSamplingEngine)TrainerContext.SingleProcess().CreateSampler(model, tokenizer, options);
                double parity = engine.CheckParity().MaxAbsDiff;
                long bytes = engine.WeightBytes;

                double swap = Median(repeats, engine.ForceSync);
                double rebuild = Median(3, () => EngineModel.Build(arch, parameters, codec, type).Dispose());
                double reload = Median(3, () => WriteAndReload(engine.Model, arch, codec, file));

                // The trainer's f32 bytes: what a swap must read, whatever the engine's type.
                long sourceBytes = parameters.Values.Sum(t => t.numel() * t.element_size());
                long buffer = Math.Max(bytes, sourceBytes);
                var source = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)buffer, 64);
                var destination = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)buffer, 64);
                try
                {
                    System.Runtime.InteropServices.NativeMemory.Fill(source, (nuint)buffer, 1);
                    System.Runtime.InteropServices.NativeMemory.Clear(destination, (nuint)buffer);
                    double memcpy = Median(repeats, () => ParallelCopy(source, destination, bytes, threads));
                    double sourceMemcpy = Median(repeats, () => ParallelCopy(source, destination, sourceBytes, threads));
                    report.Add(("dtype", type.ToString().ToLowerInvariant()), ("params", parameterCount), ("weight_mb", Math.Round(bytes / 1e6, 1)),
                        ("swap_ms", Math.Round(swap, 2)), ("rebuild_ms", Math.Round(rebuild, 2)), ("file_reload_ms", Math.Round(reload, 2)),
                        ("memcpy_ms", Math.Round(memcpy, 2)), ("source_memcpy_ms", Math.Round(sourceMemcpy, 2)), ("parity_max_abs_diff", parity),
                        ("swap_vs_memcpy", Math.Round(swap / memcpy, 2)), ("rebuild_vs_swap", Math.Round(rebuild / swap, 1)),
                        ("reload_vs_swap", Math.Round(reload / swap, 1)));
                    report.Extra[type.ToString().ToLowerInvariant()] = new System.Text.Json.Nodes.JsonObject
                    {
                        ["params"] = parameterCount, ["swap_ms"] = swap, ["rebuild_ms"] = rebuild, ["file_reload_ms"] = reload,
                        ["memcpy_ms"] = memcpy, ["source_memcpy_ms"] = sourceMemcpy, ["parity_max_abs_diff"] = parity,
                    };
                }
                finally
                {
                    System.Runtime.InteropServices.NativeMemory.AlignedFree(source);
                    System.Runtime.InteropServices.NativeMemory.AlignedFree(destination);
                }
            }
        }
        finally { File.Delete(file); }
        report.Notes.Add($"median of {repeats} (swap, memcpy) or 3 (rebuild, reload) runs; {threads} threads; trainer weights f32 on CPU. " +
            "swap = convert + copy all weights in place, clear KV; memcpy = the engine's weight bytes once on the same threads; source_memcpy = the trainer's f32 bytes once (a swap reads them all); reload = gguf write of the " +
            "already converted engine tensors + llama_model_load_from_file (no mmap) + free, so it excludes conversion.");
        return report;
    }

    /// <summary>memcpy split over <paramref name="threads"/> threads, like the swap's torch copies.</summary>
    static unsafe void ParallelCopy(byte* source, byte* destination, long bytes, int threads)
    {
        long chunk = (bytes + threads - 1) / threads;
        Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            long start = i * chunk, length = Math.Min(chunk, bytes - start);
            if (length > 0) Buffer.MemoryCopy(source + start, destination + start, length, length);
        });
    }

    static double Median(int repeats, Action action)
    {
        action();   // warm-up: page faults, caches
        var times = new List<double>();
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            action();
            times.Add(sw.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }

    /// <summary>The file path: the engine's tensors (converted already) written as .gguf, then loaded by llama.cpp.</summary>
    static void WriteAndReload(EngineModel engine, LlamaArchitecture arch, ITokenCodec codec, string file)
    {
        using (var gguf = new GgufBuilder())
        {
            LlamaGgufLayout.WriteMetadata(gguf.Context, arch, codec);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in engine.Tensors)
            {
                if (t.Source.SourceName is null || !seen.Add(t.Name)) continue;
                var ne = GgmlNative.Dimensions(t.Tensor);
                int rank = ne[1] == 1 && ne[2] == 1 && ne[3] == 1 ? 1 : 2;
                gguf.AddTensor(GgmlTensorStruct.Describe(t.Name, GgmlNative.Type(t.Tensor), ne.AsSpan(0, rank), GgmlNative.Data(t.Tensor)), t.Name);
            }
            if (!GgufNative.WriteToFile(gguf.Context, file, onlyMetadata: false)) throw new IOException($"gguf_write_to_file failed for {file}.");
        }
        var p = LlamaNative.ModelDefaultParams();
        p.LoadMode = LlamaLoadMode.None;
        var model = LlamaNative.ModelLoadFromFile(file, p);
        if (model == IntPtr.Zero) throw new InvalidOperationException($"llama_model_load_from_file failed for {file}.");
        LlamaNative.ModelFree(model);
    }
}
