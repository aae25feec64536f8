using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using VectorLm.Native;

namespace VectorLm.Sampling.Tests;

public class NativeInteropTests
{
    [Fact]
    public void Struct_sizes_match_llama_cpp_815a2a59()
    {
        Assert.Equal(72, Unsafe.SizeOf<LlamaModelParams>());
        Assert.Equal(160, Unsafe.SizeOf<LlamaContextParams>());
        Assert.Equal(56, Unsafe.SizeOf<LlamaBatch>());
        Assert.Equal(336, Unsafe.SizeOf<GgmlTensorStruct>());
        Assert.Equal(0x18, (int)Marshal.OffsetOf<LlamaModelParams>(nameof(LlamaModelParams.LoadMode)));
        Assert.Equal(0x40, (int)Marshal.OffsetOf<LlamaModelParams>(nameof(LlamaModelParams.VocabOnly)));
        Assert.Equal(133, (int)Marshal.OffsetOf<LlamaContextParams>(nameof(LlamaContextParams.KvUnified)));
    }

    [Fact]
    public void Default_params_read_through_our_layouts_hold_llama_cpp_defaults()
    {
        var m = LlamaNative.ModelDefaultParams();
        Assert.Equal(-1, m.GpuLayerCount);
        Assert.Equal(1, m.UseExtraBuffers);
        Assert.Equal(0, m.VocabOnly);
        Assert.Equal(IntPtr.Zero, m.KvOverrides);

        var c = LlamaNative.ContextDefaultParams();
        Assert.Equal(2048u, c.BatchSize);
        Assert.Equal(512u, c.MicroBatchSize);
        Assert.Equal(1u, c.MaxSequences);
        Assert.Equal(-1f, c.YarnExtFactor);
        Assert.Equal(-1, c.FlashAttentionType);   // auto
        Assert.Equal(GgmlType.F16, c.TypeK);
        Assert.Equal(GgmlType.F16, c.TypeV);
        Assert.Equal(1, c.OffloadKqv);
        Assert.Equal(IntPtr.Zero, c.Samplers);
    }

    [Fact]
    public void Binds_the_same_library_copies_LLamaSharp_loaded()
    {
        _ = LoadedNativeLibraries.Llama;
        foreach (var lib in new[] { "libllama.so", "libggml-base.so", "libggml.so" })
        {
            var path = LoadedNativeLibraries.FindLoadedPath(lib);
            Assert.NotNull(path);
            // Exactly one mapped file of that name in the process.
            var mapped = File.ReadLines("/proc/self/maps").Where(l => l.EndsWith("/" + lib, StringComparison.Ordinal))
                .Select(l => l[l.IndexOf('/')..]).Distinct().ToList();
            Assert.Single(mapped);
        }
        Assert.Equal(LoadedNativeLibraries.Llama, NativeLibrary.Load(LoadedNativeLibraries.FindLoadedPath("libllama.so")!));
    }

    [Fact]
    public void Duplicate_gguf_tensor_name_throws_instead_of_aborting()
    {
        using var gguf = new GgufBuilder();
        var t = GgmlTensorStruct.Describe("blk.0.attn_q.weight", GgmlType.F16, [4, 4]);
        gguf.AddTensor(t, "blk.0.attn_q.weight");
        var e = Assert.Throws<ArgumentException>(() => gguf.AddTensor(t, "blk.0.attn_q.weight"));
        Assert.Contains("blk.0.attn_q.weight", e.Message);
        Assert.Equal(1, GgufNative.TensorCount(gguf.Context));
    }

    [Fact]
    public void Recorded_tensors_agree_with_ggml_accessors_and_include_repeated_rope_freqs()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 2);
        using var engine = model.CreateEngine(new EngineOptions { ContextLength = 32, MaxSequences = 2, Threads = 1, ParityCheck = ParityCheckMode.Never });
        var tensors = engine.Model.Tensors;
        foreach (var t in tensors)
        {
            Assert.Equal(t.Name, GgmlNative.Name(t.Tensor));
            var ne = GgmlNative.Dimensions(t.Tensor);
            Assert.Equal(GgmlNative.ElementCount(t.Tensor), ne[0] * ne[1] * ne[2] * ne[3]);
            Assert.Equal(GgmlNative.ElementCount(t.Tensor) * GgmlNative.ElementSize(GgmlNative.Type(t.Tensor)), GgmlNative.ByteCount(t.Tensor));
        }
        Assert.Equal(GgmlType.F16, GgmlNative.Type(tensors.First(t => t.Name == "blk.0.attn_q.weight").Tensor));
        Assert.Equal(GgmlType.F32, GgmlNative.Type(tensors.First(t => t.Name == "blk.0.attn_norm.weight").Tensor));
        var ropeFreqs = tensors.Where(t => t.Name == "rope_freqs.weight").ToList();
        Assert.Equal(model.Arch.LayerCount, ropeFreqs.Count);
        Assert.All(ropeFreqs, r => Assert.Equal(1f, r.Source.Constant));
        // Every trainer-sourced GGUF tensor appears once.
        Assert.Equal(3 + 9 * model.Arch.LayerCount, tensors.Count(t => t.Source.SourceName is not null));
    }
}
