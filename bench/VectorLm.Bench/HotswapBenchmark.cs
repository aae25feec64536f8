using System.Diagnostics;
using TorchSharp;
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
        BenchLlama.Prepare(threads);
        var arch = new LlamaArchitecture(32000, 768, 2048, 8, 12, 12, 64, 1e-5f, 10000f, 2048, false);
        using var model = new BenchLlama(arch, seed: 2);
        var codec = new BenchCodec(arch.VocabSize);
        var report = new BenchReport(Name);
        string file = Path.Combine(Path.GetTempPath(), $"vectorlm-hotswap-{Environment.ProcessId}.gguf");
        try
        {
            foreach (var type in new[] { EngineWeightType.F16, EngineWeightType.F32 })
            {
                var options = new EngineOptions { WeightType = type, ContextLength = 64, MaxSequences = 2, BatchTokens = 64, Threads = threads, ParityCheck = ParityCheckMode.Never };
                using var engine = LlamaSamplingEngine.Create(TrainerContext.SingleProcess(), arch, () => model.Parameters, codec, model.ForwardAll, options);
                double parity = engine.CheckParity().MaxAbsDiff;
                long bytes = engine.WeightBytes;

                double swap = Median(repeats, engine.ForceSync);
                double rebuild = Median(3, () => EngineModel.Build(arch, model.Parameters, codec, type).Dispose());
                double reload = Median(3, () => WriteAndReload(engine.Model, arch, codec, file));

                var source = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
                var destination = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)bytes, 64);
                try
                {
                    new Span<byte>(source, (int)Math.Min(bytes, int.MaxValue)).Fill(1);
                    new Span<byte>(destination, (int)Math.Min(bytes, int.MaxValue)).Clear();
                    double memcpy = Median(repeats, () => Buffer.MemoryCopy(source, destination, bytes, bytes));
                    report.Add(("dtype", type.ToString().ToLowerInvariant()), ("params", model.ParameterCount), ("weight_mb", Math.Round(bytes / 1e6, 1)),
                        ("swap_ms", Math.Round(swap, 2)), ("rebuild_ms", Math.Round(rebuild, 2)), ("file_reload_ms", Math.Round(reload, 2)),
                        ("memcpy_ms", Math.Round(memcpy, 2)), ("parity_max_abs_diff", parity),
                        ("swap_vs_memcpy", Math.Round(swap / memcpy, 2)), ("rebuild_vs_swap", Math.Round(rebuild / swap, 1)),
                        ("reload_vs_swap", Math.Round(reload / swap, 1)));
                    report.Extra[type.ToString().ToLowerInvariant()] = new System.Text.Json.Nodes.JsonObject
                    {
                        ["params"] = model.ParameterCount, ["swap_ms"] = swap, ["rebuild_ms"] = rebuild, ["file_reload_ms"] = reload,
                        ["memcpy_ms"] = memcpy, ["parity_max_abs_diff"] = parity,
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
            "swap = convert + copy all weights in place, clear KV; memcpy = the engine's weight bytes once; reload = gguf write of the " +
            "already converted engine tensors + llama_model_load_from_file (no mmap) + free, so it excludes conversion.");
        return report;
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
