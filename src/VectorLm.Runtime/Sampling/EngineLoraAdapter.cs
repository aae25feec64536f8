using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Models;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>
/// A LoRA adapter inside the llama.cpp engine, applied by llama.cpp's graph to the base weights (which stay as they
/// are). llama.cpp only loads adapters from a GGUF file, so the adapter is written once, with zeros, to
/// memory-backed storage (<c>/dev/shm</c>), loaded, and the file deleted; from then on every sync overwrites its
/// tensors in place, as the base swap does, and no file is written again.
/// </summary>
/// <remarks>
/// The C API returns an opaque adapter; its tensors are found through libllama's exported
/// <c>llama_adapter_lora::get_weight(ggml_tensor*)</c> and checked by name and shape before first use, so a different
/// llama.cpp layout fails loudly instead of writing into the wrong memory.
/// </remarks>
internal sealed unsafe class EngineLoraAdapter : IDisposable
{
    sealed record Target(string Module, string GgufName, IntPtr A, IntPtr B, int PermuteHeads);

    readonly Target[] _targets;
    IntPtr _handle;

    EngineLoraAdapter(IntPtr handle, Target[] targets, int rank)
    {
        _handle = handle;
        _targets = targets;
        Rank = rank;
        Bytes = targets.Sum(t => GgmlNative.ByteCount(t.A) + GgmlNative.ByteCount(t.B));
    }

    /// <summary>llama.cpp's <c>llama_adapter_lora*</c>.</summary>
    public IntPtr Handle => _handle;

    /// <summary>The adapter's rank.</summary>
    public int Rank { get; }

    /// <summary>Bytes of the adapter's tensors in the engine (what an adapter sync writes).</summary>
    public long Bytes { get; }

    /// <summary>Where the one-time GGUF goes: memory-backed when the machine has <c>/dev/shm</c>.</summary>
    internal static string StagingDirectory => Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();

    /// <summary>True when <paramref name="weights"/> has the modules and rank this adapter was loaded with.</summary>
    public bool Fits(IReadOnlyList<LoraWeights> weights) =>
        weights.Count == _targets.Length && weights[0].A.shape[0] == Rank &&
        weights.Select(w => w.Module).SequenceEqual(_targets.Select(t => t.Module));

    /// <summary>Loads an adapter with the modules and rank of <paramref name="weights"/> and copies their values in.</summary>
    public static EngineLoraAdapter Load(EngineModel model, IReadOnlyList<LoraWeights> weights)
    {
        if (weights.Count == 0) throw new ArgumentException("An adapter needs at least one module.", nameof(weights));
        int rank = (int)weights[0].A.shape[0];
        var bases = new List<(LoraWeights W, EngineTensor Base)>();
        foreach (var w in weights)
        {
            if (w.A.shape[0] != rank) throw new ArgumentException($"{w.Module}: rank {w.A.shape[0]}, the adapter's other modules have {rank}.", nameof(weights));
            var engineTensor = model.FindBySource(w.BaseWeight)
                ?? throw new ArgumentException($"{w.Module}: the engine has no tensor from '{w.BaseWeight}'.", nameof(weights));
            bases.Add((w, engineTensor));
        }

        string path = Path.Combine(StagingDirectory, $"vectorlm-lora-{Environment.ProcessId}-{Guid.NewGuid():N}.gguf");
        // The engine's weight type: an f16 engine gets an f16 adapter (half the bytes per sync; llama.cpp multiplies it with f32 activations).
        var type = model.WeightType;
        long largest = bases.Max(b => Math.Max(b.W.A.numel(), b.W.B.numel())) * GgmlNative.ElementSize(type);
        var zeros = NativeMemory.AllocZeroed((nuint)largest);
        IntPtr handle;
        try
        {
            using (var gguf = new GgufBuilder())
            {
                GgufNative.SetString(gguf.Context, "general.architecture", "llama");
                GgufNative.SetString(gguf.Context, "general.type", "adapter");
                GgufNative.SetString(gguf.Context, "adapter.type", "lora");
                // No adapter.lora.alpha: llama.cpp then applies the context's scale as given (our alpha / r or alpha / sqrt(r)).
                foreach (var (w, b) in bases)
                {
                    string a = b.Name + ".lora_a", bName = b.Name + ".lora_b";
                    gguf.AddTensor(GgmlTensorStruct.Describe(a, type, [w.A.shape[1], rank], (IntPtr)zeros), a);
                    gguf.AddTensor(GgmlTensorStruct.Describe(bName, type, [rank, w.B.shape[0]], (IntPtr)zeros), bName);
                }
                if (!GgufNative.WriteToFile(gguf.Context, path, onlyMetadata: false))
                    throw new IOException($"Could not write the adapter GGUF to '{path}'.");
            }
            handle = LlamaNative.AdapterLoraInit(model.Handle, path);
        }
        finally
        {
            NativeMemory.Free(zeros);
            try { File.Delete(path); } catch (IOException) { }
        }
        if (handle == IntPtr.Zero) throw new InvalidOperationException("llama_adapter_lora_init failed; see llama.cpp's log on stderr.");

        var targets = new Target[bases.Count];
        try
        {
            for (int i = 0; i < bases.Count; i++)
            {
                var (w, b) = bases[i];
                var (a, bt) = LlamaNative.AdapterLoraWeight(handle, b.Tensor);
                Check(a, b.Name + ".lora_a", [w.A.shape[1], rank], type);
                Check(bt, b.Name + ".lora_b", [rank, w.B.shape[0]], type);
                targets[i] = new Target(w.Module, b.Name, a, bt, b.Source.PermuteHeads);
            }
        }
        catch
        {
            LlamaNative.AdapterLoraFree(handle);
            throw;
        }
        var adapter = new EngineLoraAdapter(handle, targets, rank);
        adapter.CopyWeights(weights);
        return adapter;
    }

    static void Check(IntPtr tensor, string name, long[] ne, GgmlType type)
    {
        if (tensor == IntPtr.Zero)
            throw new InvalidOperationException($"llama.cpp's adapter has no tensor '{name}' (llama_adapter_lora::get_weight returned none).");
        var dims = GgmlNative.Dimensions(tensor);
        if (GgmlNative.Name(tensor) != name || dims[0] != ne[0] || dims[1] != ne[1] || GgmlNative.Type(tensor) != type)
            throw new InvalidOperationException($"llama.cpp's adapter tensor for '{name}' is '{GgmlNative.Name(tensor)}' of ne [{dims[0]}, {dims[1]}]; " +
                $"expected ne [{ne[0]}, {ne[1]}], {type}. This llama.cpp build lays adapters out differently from 815a2a59.");
    }

    /// <summary>Overwrites the adapter's tensors with <paramref name="weights"/> (B's q/k rows permuted as the base's are). Returns the bytes written.</summary>
    public long CopyWeights(IReadOnlyList<LoraWeights> weights)
    {
        if (!Fits(weights)) throw new ArgumentException("The weights do not have this adapter's modules and rank.", nameof(weights));
        using var _ = torch.no_grad();
        for (int i = 0; i < _targets.Length; i++)
        {
            var t = _targets[i];
            var w = weights[i];
            // ggml reads a tensor of ne [in, 1] as a vector: hand rank-1 A over as one.
            using var a = Rank == 1 ? w.A.detach().reshape(-1) : w.A.detach();
            WeightWriter.Write(t.A, t.GgufName + ".lora_a", a, 0);
            WeightWriter.Write(t.B, t.GgufName + ".lora_b", w.B, t.PermuteHeads);
        }
        return Bytes;
    }

    /// <summary>Frees the adapter; it must no longer be set on any context.</summary>
    public void Dispose()
    {
        if (_handle == IntPtr.Zero) return;
        LlamaNative.AdapterLoraFree(_handle);
        _handle = IntPtr.Zero;
    }
}
