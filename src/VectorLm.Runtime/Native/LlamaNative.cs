using System.Runtime.InteropServices;
using static VectorLm.Native.LoadedNativeLibraries;

namespace VectorLm.Native;

/// <summary>How llama.cpp maps a model file (llama_load_mode).</summary>
internal enum LlamaLoadMode
{
    None = 0,
    Mmap = 1,
    Mlock = 2,
    MmapMlock = 3,
    DirectIo = 4,
}

/// <summary><c>struct llama_model_params</c> of llama.cpp 815a2a59 (72 bytes on x86-64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaModelParams
{
    public IntPtr Devices;
    public IntPtr TensorBufferOverrides;
    public int GpuLayerCount;
    public int SplitMode;
    public LlamaLoadMode LoadMode;
    public int MainGpu;
    public IntPtr TensorSplit;
    public IntPtr ProgressCallback;
    public IntPtr ProgressCallbackUserData;
    public IntPtr KvOverrides;
    public byte VocabOnly;
    public byte CheckTensors;
    public byte UseExtraBuffers;
    public byte NoHost;
    public byte NoAlloc;
    public byte LoadMtp;
}

/// <summary><c>struct llama_context_params</c> of llama.cpp 815a2a59 (160 bytes on x86-64).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct LlamaContextParams
{
    public uint ContextSize;
    public uint BatchSize;
    public uint MicroBatchSize;
    public uint MaxSequences;
    public uint RecurrentStateSequences;
    public uint MaxOutputs;
    public int Threads;
    public int BatchThreads;
    public int ContextType;
    public int RopeScalingType;
    public int PoolingType;
    public int AttentionType;
    public int FlashAttentionType;
    public float RopeFreqBase;
    public float RopeFreqScale;
    public float YarnExtFactor;
    public float YarnAttnFactor;
    public float YarnBetaFast;
    public float YarnBetaSlow;
    public uint YarnOrigContext;
    public float DefragThreshold;
    public IntPtr EvalCallback;
    public IntPtr EvalCallbackUserData;
    public GgmlType TypeK;
    public GgmlType TypeV;
    public IntPtr AbortCallback;
    public IntPtr AbortCallbackUserData;
    public byte Embeddings;
    public byte OffloadKqv;
    public byte NoPerf;
    public byte OpOffload;
    public byte SwaFull;
    public byte KvUnified;
    public IntPtr Samplers;
    public nuint SamplerCount;
    public IntPtr OtherContext;
}

/// <summary><c>struct llama_batch</c>: parallel arrays of tokens, positions, sequence ids and output flags.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct LlamaBatch
{
    public int TokenCount;
    public int* Tokens;
    public float* Embeddings;
    public int* Positions;
    public int* SeqIdCounts;
    public int** SeqIds;
    public sbyte* Logits;
}

/// <summary>Owns a <c>llama_model*</c>.</summary>
internal sealed class LlamaModelHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public LlamaModelHandle(IntPtr model) : this() => SetHandle(model);
    public override bool IsInvalid => handle == IntPtr.Zero;
    protected override bool ReleaseHandle()
    {
        LlamaNative.ModelFree(handle);
        return true;
    }
}

/// <summary>Owns a <c>llama_context*</c>; keeps its model alive while it lives.</summary>
internal sealed class LlamaContextHandle : SafeHandle
{
    readonly LlamaModelHandle _model;
    readonly bool _addedModelRef;

    public LlamaContextHandle(IntPtr context, LlamaModelHandle model) : base(IntPtr.Zero, ownsHandle: true)
    {
        _model = model;
        model.DangerousAddRef(ref _addedModelRef);
        SetHandle(context);
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        LlamaNative.Free(handle);
        if (_addedModelRef) _model.DangerousRelease();
        return true;
    }
}

/// <summary>libllama entry points used by the engine, bound to the copy LLamaSharp loaded.</summary>
internal static unsafe class LlamaNative
{
    static readonly delegate* unmanaged[Cdecl]<LlamaModelParams> s_modelDefaultParams =
        (delegate* unmanaged[Cdecl]<LlamaModelParams>)Export(Llama, "llama_model_default_params");
    static readonly delegate* unmanaged[Cdecl]<LlamaContextParams> s_contextDefaultParams =
        (delegate* unmanaged[Cdecl]<LlamaContextParams>)Export(Llama, "llama_context_default_params");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, LlamaModelParams, IntPtr> s_modelInitFromUser =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr, LlamaModelParams, IntPtr>)Export(Llama, "llama_model_init_from_user");
    static readonly delegate* unmanaged[Cdecl]<byte*, LlamaModelParams, IntPtr> s_modelLoadFromFile =
        (delegate* unmanaged[Cdecl]<byte*, LlamaModelParams, IntPtr>)Export(Llama, "llama_model_load_from_file");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, void> s_modelFree =
        (delegate* unmanaged[Cdecl]<IntPtr, void>)Export(Llama, "llama_model_free");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, LlamaContextParams, IntPtr> s_initFromModel =
        (delegate* unmanaged[Cdecl]<IntPtr, LlamaContextParams, IntPtr>)Export(Llama, "llama_init_from_model");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, void> s_free =
        (delegate* unmanaged[Cdecl]<IntPtr, void>)Export(Llama, "llama_free");
    static readonly delegate* unmanaged[Cdecl]<int, int, int, LlamaBatch> s_batchInit =
        (delegate* unmanaged[Cdecl]<int, int, int, LlamaBatch>)Export(Llama, "llama_batch_init");
    static readonly delegate* unmanaged[Cdecl]<LlamaBatch, void> s_batchFree =
        (delegate* unmanaged[Cdecl]<LlamaBatch, void>)Export(Llama, "llama_batch_free");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, LlamaBatch, int> s_decode =
        (delegate* unmanaged[Cdecl]<IntPtr, LlamaBatch, int>)Export(Llama, "llama_decode");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, int, float*> s_getLogitsIth =
        (delegate* unmanaged[Cdecl]<IntPtr, int, float*>)Export(Llama, "llama_get_logits_ith");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> s_getMemory =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Export(Llama, "llama_get_memory");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte, void> s_memoryClear =
        (delegate* unmanaged[Cdecl]<IntPtr, byte, void>)Export(Llama, "llama_memory_clear");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, int, int, int, byte> s_memorySeqRm =
        (delegate* unmanaged[Cdecl]<IntPtr, int, int, int, byte>)Export(Llama, "llama_memory_seq_rm");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, int, int> s_memorySeqPosMax =
        (delegate* unmanaged[Cdecl]<IntPtr, int, int>)Export(Llama, "llama_memory_seq_pos_max");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> s_modelGetVocab =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Export(Llama, "llama_model_get_vocab");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, int> s_vocabTokenCount =
        (delegate* unmanaged[Cdecl]<IntPtr, int>)Export(Llama, "llama_vocab_n_tokens");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, int, int*, int, byte, byte, int> s_tokenize =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, int, int*, int, byte, byte, int>)Export(Llama, "llama_tokenize");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, uint> s_contextSize =
        (delegate* unmanaged[Cdecl]<IntPtr, uint>)Export(Llama, "llama_n_ctx");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, uint> s_contextSizePerSequence =
        (delegate* unmanaged[Cdecl]<IntPtr, uint>)Export(Llama, "llama_n_ctx_seq");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, uint> s_maxSequences =
        (delegate* unmanaged[Cdecl]<IntPtr, uint>)Export(Llama, "llama_n_seq_max");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, int, int, void> s_setThreads =
        (delegate* unmanaged[Cdecl]<IntPtr, int, int, void>)Export(Llama, "llama_set_n_threads");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void> s_logSet =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void>)Export(Llama, "llama_log_set");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr> s_adapterLoraInit =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, IntPtr>)Export(Llama, "llama_adapter_lora_init");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, void> s_adapterLoraFree =
        (delegate* unmanaged[Cdecl]<IntPtr, void>)Export(Llama, "llama_adapter_lora_free");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, nuint, float*, int> s_setAdaptersLora =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr*, nuint, float*, int>)Export(Llama, "llama_set_adapters_lora");
    // llama_adapter_lora::get_weight(ggml_tensor*), exported by libllama (C++ member: `this` first). The C API has no
    // way to reach an adapter's tensors; this returns its llama_adapter_lora_weight { ggml_tensor* a; ggml_tensor* b; }.
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr> s_adapterLoraGetWeight =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, IntPtr>)Export(Llama, "_ZN18llama_adapter_lora10get_weightEP11ggml_tensor");

    public static LlamaModelParams ModelDefaultParams() => s_modelDefaultParams();

    public static LlamaContextParams ContextDefaultParams() => s_contextDefaultParams();

    /// <summary>
    /// Builds a model from in-memory GGUF metadata; <paramref name="setTensorData"/> is called synchronously for every
    /// tensor (<c>void cb(ggml_tensor*, void* user)</c>). Returns null (zero) on failure.
    /// </summary>
    public static IntPtr ModelInitFromUser(GgufContextHandle metadata, delegate* unmanaged[Cdecl]<IntPtr, IntPtr, void> setTensorData,
        IntPtr userData, LlamaModelParams parameters)
    {
        bool added = false;
        metadata.DangerousAddRef(ref added);
        try { return s_modelInitFromUser(metadata.DangerousGetHandle(), (IntPtr)setTensorData, userData, parameters); }
        finally { if (added) metadata.DangerousRelease(); }
    }

    public static IntPtr ModelLoadFromFile(string path, LlamaModelParams parameters)
    {
        var bytes = NullTerminatedUtf8(path);
        fixed (byte* p = bytes) return s_modelLoadFromFile(p, parameters);
    }

    public static void ModelFree(IntPtr model) => s_modelFree(model);

    public static IntPtr InitFromModel(LlamaModelHandle model, LlamaContextParams parameters) =>
        s_initFromModel(model.DangerousGetHandle(), parameters);

    public static void Free(IntPtr context) => s_free(context);

    public static LlamaBatch BatchInit(int tokens, int embeddings, int maxSequencesPerToken) => s_batchInit(tokens, embeddings, maxSequencesPerToken);

    public static void BatchFree(LlamaBatch batch) => s_batchFree(batch);

    /// <summary>0 on success; 1 when no KV slot was found; negative on error.</summary>
    public static int Decode(LlamaContextHandle context, LlamaBatch batch) => s_decode(context.DangerousGetHandle(), batch);

    public static float* GetLogitsIth(LlamaContextHandle context, int index) => s_getLogitsIth(context.DangerousGetHandle(), index);

    public static void MemoryClear(LlamaContextHandle context, bool data) =>
        s_memoryClear(s_getMemory(context.DangerousGetHandle()), data ? (byte)1 : (byte)0);

    public static bool MemorySeqRemove(LlamaContextHandle context, int sequence, int fromPosition, int toPosition) =>
        s_memorySeqRm(s_getMemory(context.DangerousGetHandle()), sequence, fromPosition, toPosition) != 0;

    /// <summary>Largest position held for <paramref name="sequence"/>, or -1 when it holds none.</summary>
    public static int MemorySeqPositionMax(LlamaContextHandle context, int sequence) =>
        s_memorySeqPosMax(s_getMemory(context.DangerousGetHandle()), sequence);

    public static IntPtr ModelGetVocab(LlamaModelHandle model) => s_modelGetVocab(model.DangerousGetHandle());

    public static int VocabTokenCount(IntPtr vocab) => s_vocabTokenCount(vocab);

    /// <summary>llama.cpp's own tokenizer (used to check it agrees with the trainer's).</summary>
    public static int[] Tokenize(IntPtr vocab, string text, bool addSpecial, bool parseSpecial)
    {
        var utf8 = System.Text.Encoding.UTF8.GetBytes(text);
        var tokens = new int[utf8.Length + 8];
        fixed (byte* t = utf8)
        fixed (int* o = tokens)
        {
            int n = s_tokenize(vocab, t, utf8.Length, o, tokens.Length, addSpecial ? (byte)1 : (byte)0, parseSpecial ? (byte)1 : (byte)0);
            if (n < 0) throw new InvalidOperationException($"llama_tokenize needs {-n} tokens, more than the {tokens.Length} provided.");
            return tokens[..n];
        }
    }

    public static uint ContextSize(LlamaContextHandle context) => s_contextSize(context.DangerousGetHandle());

    public static uint ContextSizePerSequence(LlamaContextHandle context) => s_contextSizePerSequence(context.DangerousGetHandle());

    public static uint MaxSequences(LlamaContextHandle context) => s_maxSequences(context.DangerousGetHandle());

    public static void SetThreads(LlamaContextHandle context, int threads, int batchThreads) =>
        s_setThreads(context.DangerousGetHandle(), threads, batchThreads);

    /// <summary>Routes llama.cpp and ggml log lines to <paramref name="callback"/> (<c>void cb(int level, const char*, void*)</c>).</summary>
    public static void LogSet(delegate* unmanaged[Cdecl]<int, byte*, IntPtr, void> callback) => s_logSet((IntPtr)callback, IntPtr.Zero);

    /// <summary>Loads a GGUF LoRA adapter for <paramref name="model"/> (file only); zero on failure (see llama.cpp's log).</summary>
    public static IntPtr AdapterLoraInit(LlamaModelHandle model, string path)
    {
        fixed (byte* p = NullTerminatedUtf8(path)) return s_adapterLoraInit(model.DangerousGetHandle(), p);
    }

    /// <summary>Frees an adapter (and removes it from its model); unset it from every context first.</summary>
    public static void AdapterLoraFree(IntPtr adapter) => s_adapterLoraFree(adapter);

    /// <summary>Replaces the context's adapters; the graph applies <c>scale</c> (times alpha / r when the GGUF sets alpha).</summary>
    public static int SetAdaptersLora(LlamaContextHandle context, IntPtr adapter, float scale)
    {
        IntPtr* adapters = stackalloc IntPtr[1];
        float* scales = stackalloc float[1];
        adapters[0] = adapter;
        scales[0] = scale;
        return s_setAdaptersLora(context.DangerousGetHandle(), adapter == IntPtr.Zero ? null : adapters, adapter == IntPtr.Zero ? 0u : 1u,
            adapter == IntPtr.Zero ? null : scales);
    }

    /// <summary>The adapter's (lora_a, lora_b) tensors for base tensor <paramref name="modelTensor"/>, or zeros when it has none.</summary>
    public static (IntPtr A, IntPtr B) AdapterLoraWeight(IntPtr adapter, IntPtr modelTensor)
    {
        var weight = (IntPtr*)s_adapterLoraGetWeight(adapter, modelTensor);
        return weight == null ? (IntPtr.Zero, IntPtr.Zero) : (weight[0], weight[1]);
    }

    internal static byte[] NullTerminatedUtf8(string s)
    {
        var bytes = new byte[System.Text.Encoding.UTF8.GetByteCount(s) + 1];
        System.Text.Encoding.UTF8.GetBytes(s, bytes);
        return bytes;
    }
}
