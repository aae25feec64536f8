using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>One tensor of the llama.cpp model as llama.cpp created it, and where its values come from.</summary>
internal sealed record EngineTensor(string Name, IntPtr Tensor, TensorSource Source);

/// <summary>
/// A llama.cpp model built in memory (llama_model_init_from_user) from trainer parameters, and the tensors it
/// created, so the weights can be overwritten in place later.
/// </summary>
internal sealed unsafe class EngineModel : IDisposable
{
    readonly Dictionary<string, TensorSource> _sources;

    EngineModel(LlamaModelHandle handle, List<EngineTensor> tensors, Dictionary<string, TensorSource> sources, GgmlType weightType)
    {
        Handle = handle;
        Tensors = tensors;
        _sources = sources;
        WeightType = weightType;
    }

    public LlamaModelHandle Handle { get; }

    /// <summary>Every (name, tensor) pair llama.cpp handed out; names may repeat (rope_freqs per layer).</summary>
    public IReadOnlyList<EngineTensor> Tensors { get; }

    public GgmlType WeightType { get; }

    /// <summary>Bytes of all trainer-sourced tensors in the engine (what a swap writes).</summary>
    public long SourcedBytes => Tensors.Where(t => t.Source.SourceName is not null).Sum(t => GgmlNative.ByteCount(t.Tensor));

    /// <summary>Builds the model; 2-D weights get <paramref name="weightType"/>, vectors stay f32.</summary>
    public static EngineModel Build(LlamaArchitecture arch, IReadOnlyDictionary<string, Tensor> parameters, ITokenCodec vocab,
        EngineWeightType weightType)
    {
        arch.Validate();
        var sources = LlamaGgufLayout.SourcedTensors(arch, parameters.Keys.ToList());
        var ggmlType = LlamaGgufLayout.ToGgml(weightType);
        using var gguf = new GgufBuilder();
        LlamaGgufLayout.WriteMetadata(gguf.Context, arch, vocab);
        // A metadata tensor of another type than F32 makes llama.cpp create that tensor with that type.
        if (ggmlType != GgmlType.F32)
            foreach (var s in sources.Values)
            {
                var shape = parameters[s.SourceName!].shape;
                if (shape.Length == 2)
                    gguf.AddTensor(GgmlTensorStruct.Describe(s.GgufName, ggmlType, LlamaGgufLayout.GgufDimensions(shape)), s.GgufName);
            }

        var state = new BuildState(sources, parameters, arch);
        var stateHandle = GCHandle.Alloc(state);
        IntPtr model;
        try
        {
            var p = LlamaNative.ModelDefaultParams();
            p.LoadMode = LlamaLoadMode.None;
            using (torch.no_grad())
                model = LlamaNative.ModelInitFromUser(gguf.Context, &OnTensor, GCHandle.ToIntPtr(stateHandle), p);
        }
        finally { stateHandle.Free(); }

        var handle = new LlamaModelHandle(model);
        if (handle.IsInvalid)
            throw new InvalidOperationException("llama_model_init_from_user failed" +
                (state.Errors.Count > 0 ? ": " + string.Join("; ", state.Errors) : "; see llama.cpp's log on stderr."));
        if (state.Errors.Count > 0)
        {
            handle.Dispose();
            throw new InvalidOperationException("Building the engine model failed: " + string.Join("; ", state.Errors));
        }
        var missing = sources.Keys.Where(k => state.Tensors.All(t => t.Name != k)).ToList();
        if (missing.Count > 0)
        {
            handle.Dispose();
            throw new InvalidOperationException($"llama.cpp did not create tensors {string.Join(", ", missing)}.");
        }
        return new EngineModel(handle, state.Tensors, sources, ggmlType);
    }

    /// <summary>
    /// Overwrites every trainer-sourced tensor with <paramref name="parameters"/>, converting dtype in the same pass;
    /// with <paramref name="onlyTrainable"/> only those whose parameter requires gradients (a step changes no other).
    /// Returns the bytes written.
    /// </summary>
    public long CopyWeights(IReadOnlyDictionary<string, Tensor> parameters, bool onlyTrainable = false)
    {
        using var _ = torch.no_grad();
        long bytes = 0;
        foreach (var t in Tensors)
        {
            if (t.Source.SourceName is not { } name) continue;
            if (!parameters.TryGetValue(name, out var source))
                throw new InvalidOperationException($"The trainer model no longer has parameter '{name}'.");
            if (onlyTrainable && !source.requires_grad) continue;
            WeightWriter.Write(t.Tensor, t.Name, source, t.Source.PermuteHeads);
            bytes += GgmlNative.ByteCount(t.Tensor);
        }
        return bytes;
    }

    /// <summary>The engine tensor filled from trainer parameter <paramref name="sourceName"/> (Hugging Face name), or null.</summary>
    public EngineTensor? FindBySource(string sourceName) => Tensors.FirstOrDefault(t => t.Source.SourceName == sourceName);

    public void Dispose() => Handle.Dispose();

    sealed class BuildState(Dictionary<string, TensorSource> sources, IReadOnlyDictionary<string, Tensor> parameters, LlamaArchitecture arch)
    {
        public readonly List<EngineTensor> Tensors = new();
        public readonly List<string> Errors = new();

        public void Fill(IntPtr tensor)
        {
            var name = GgmlNative.Name(tensor);
            var source = sources.GetValueOrDefault(name) ?? LlamaGgufLayout.ConstantTensor(name, arch);
            if (source is null)
            {
                Errors.Add($"llama.cpp asked for tensor '{name}', which the engine cannot fill");
                return;
            }
            Tensors.Add(new EngineTensor(name, tensor, source));
            if (source.SourceName is { } hf) WeightWriter.Write(tensor, name, parameters[hf], source.PermuteHeads);
            else if (source.Values is { } values) WeightWriter.Write(tensor, name, values);
            else WeightWriter.Fill(tensor, source.Constant);
        }
    }

    // Called by llama.cpp synchronously for each tensor; exceptions must not cross into native code.
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    static void OnTensor(IntPtr tensor, IntPtr userData)
    {
        var state = (BuildState)GCHandle.FromIntPtr(userData).Target!;
        try { state.Fill(tensor); }
        catch (Exception e) { state.Errors.Add($"{GgmlNative.Name(tensor)}: {e.Message}"); }
    }
}

/// <summary>Writes torch tensors into llama.cpp tensors: one strided, converting copy per tensor (torch threads it).</summary>
internal static class WeightWriter
{
    public static ScalarType TorchType(GgmlType type) => type switch
    {
        GgmlType.F32 => ScalarType.Float32,
        GgmlType.F16 => ScalarType.Float16,
        GgmlType.BF16 => ScalarType.BFloat16,
        _ => throw new NotSupportedException($"ggml type {type} is not written by the engine."),
    };

    /// <summary>
    /// Copies <paramref name="source"/> (Hugging Face layout, any dtype/device) into <paramref name="tensor"/>. For q/k
    /// (<paramref name="permuteHeads"/> &gt; 0) rows are reordered per head from rotate-half to interleaved pairs:
    /// GGUF row (h, i, j) = HF row (h, j, i) with j in {0, 1} selecting the half.
    /// </summary>
    public static void Write(IntPtr tensor, string name, Tensor source, int permuteHeads)
    {
        var ne = GgmlNative.Dimensions(tensor);
        var expected = ne[1] == 1 && ne[2] == 1 && ne[3] == 1 ? new[] { ne[0] } : new[] { ne[1], ne[0] };
        if (!source.shape.SequenceEqual(expected))
            throw new InvalidOperationException($"Tensor '{name}': trainer shape [{string.Join(", ", source.shape)}], engine expects [{string.Join(", ", expected)}].");
        using var scope = torch.NewDisposeScope();
        var view = source.detach();
        long[] shape = expected;
        if (permuteHeads > 0 && expected.Length == 1)
        {
            // A q/k bias: its rows move like the weight's.
            long half = expected[0] / permuteHeads / 2;
            view = view.view(permuteHeads, 2, half).transpose(1, 2);
            shape = [permuteHeads, half, 2];
        }
        else if (permuteHeads > 0)
        {
            long rows = expected[0], cols = expected[1];
            long half = rows / permuteHeads / 2;
            view = view.view(permuteHeads, 2, half, cols).transpose(1, 2);
            shape = [permuteHeads, half, 2, cols];
        }
        CopyInto(tensor, view, shape);
    }

    /// <summary>Copies <paramref name="values"/> into the 1-D <paramref name="tensor"/>.</summary>
    public static void Write(IntPtr tensor, string name, float[] values)
    {
        if (GgmlNative.ElementCount(tensor) != values.Length)
            throw new InvalidOperationException($"Tensor '{name}' has {GgmlNative.ElementCount(tensor)} elements; the engine computed {values.Length}.");
        using var scope = torch.NewDisposeScope();
        CopyInto(tensor, torch.tensor(values), [values.Length]);
    }

    /// <summary>Sets every element of <paramref name="tensor"/> to <paramref name="value"/>.</summary>
    public static void Fill(IntPtr tensor, float value)
    {
        using var scope = torch.NewDisposeScope();
        var constant = torch.full(GgmlNative.ElementCount(tensor), value, dtype: ScalarType.Float32);
        CopyInto(tensor, constant, [GgmlNative.ElementCount(tensor)]);
    }

    static void CopyInto(IntPtr tensor, Tensor view, long[] shape)
    {
        var dtype = TorchType(GgmlNative.Type(tensor));
        if (GgmlNative.IsHostMemory(tensor))
        {
            // CPU backend: convert straight into llama.cpp's memory.
            using var destination = TorchSharpNative.ViewOf(GgmlNative.Data(tensor), shape, dtype);
            destination.copy_(view);
            return;
        }
        // Device backend (CUDA build): convert into pinned host memory when the trainer is on CUDA too, then upload.
        long bytes = GgmlNative.ByteCount(tensor);
        using var staging = view.device_type == DeviceType.CUDA
            ? torch.empty(bytes, ScalarType.Byte).pin_memory()
            : torch.empty(bytes, ScalarType.Byte);
        var pointer = (IntPtr)staging.storage<byte>().data_ptr();
        using (var destination = TorchSharpNative.ViewOf(pointer, shape, dtype)) destination.copy_(view);
        GgmlNative.BackendTensorSet(tensor, pointer, 0, bytes);
    }
}
