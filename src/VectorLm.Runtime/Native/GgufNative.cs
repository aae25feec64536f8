using System.Runtime.InteropServices;
using static VectorLm.Native.LoadedNativeLibraries;

namespace VectorLm.Native;

/// <summary>GGUF value types (<c>enum gguf_type</c>) used for arrays.</summary>
internal enum GgufType
{
    Int32 = 5,
    Float32 = 6,
}

/// <summary>Owns a <c>gguf_context*</c>.</summary>
internal sealed class GgufContextHandle() : SafeHandle(IntPtr.Zero, ownsHandle: true)
{
    public override bool IsInvalid => handle == IntPtr.Zero;
    internal void Set(IntPtr context) => SetHandle(context);
    protected override bool ReleaseHandle()
    {
        GgufNative.Free(handle);
        return true;
    }
}

/// <summary>gguf (in libggml-base) entry points, bound to the copy LLamaSharp loaded.</summary>
/// <remarks>gguf aborts the process on misuse (duplicate tensor names), so callers go through <see cref="GgufBuilder"/>.</remarks>
internal static unsafe class GgufNative
{
    static readonly delegate* unmanaged[Cdecl]<IntPtr> s_initEmpty =
        (delegate* unmanaged[Cdecl]<IntPtr>)Export(GgmlBase, "gguf_init_empty");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, void> s_free =
        (delegate* unmanaged[Cdecl]<IntPtr, void>)Export(GgmlBase, "gguf_free");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, void> s_setValStr =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte*, void>)Export(GgmlBase, "gguf_set_val_str");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, uint, void> s_setValU32 =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, uint, void>)Export(GgmlBase, "gguf_set_val_u32");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, float, void> s_setValF32 =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, float, void>)Export(GgmlBase, "gguf_set_val_f32");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, byte, void> s_setValBool =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte, void>)Export(GgmlBase, "gguf_set_val_bool");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, byte**, nuint, void> s_setArrStr =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte**, nuint, void>)Export(GgmlBase, "gguf_set_arr_str");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, int, void*, nuint, void> s_setArrData =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, int, void*, nuint, void>)Export(GgmlBase, "gguf_set_arr_data");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, GgmlTensorStruct*, void> s_addTensor =
        (delegate* unmanaged[Cdecl]<IntPtr, GgmlTensorStruct*, void>)Export(GgmlBase, "gguf_add_tensor");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, long> s_findTensor =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, long>)Export(GgmlBase, "gguf_find_tensor");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*, byte, byte> s_writeToFile =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*, byte, byte>)Export(GgmlBase, "gguf_write_to_file");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, long> s_getTensorCount =
        (delegate* unmanaged[Cdecl]<IntPtr, long>)Export(GgmlBase, "gguf_get_n_tensors");

    public static GgufContextHandle InitEmpty()
    {
        var handle = new GgufContextHandle();
        var ctx = s_initEmpty();
        if (ctx == IntPtr.Zero) throw new InvalidOperationException("gguf_init_empty returned null.");
        handle.Set(ctx);
        return handle;
    }

    public static void Free(IntPtr context) => s_free(context);

    public static void SetString(GgufContextHandle ctx, string key, string value)
    {
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key))
        fixed (byte* v = LlamaNative.NullTerminatedUtf8(value))
            s_setValStr(ctx.DangerousGetHandle(), k, v);
    }

    public static void SetUInt32(GgufContextHandle ctx, string key, uint value)
    {
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key)) s_setValU32(ctx.DangerousGetHandle(), k, value);
    }

    public static void SetFloat32(GgufContextHandle ctx, string key, float value)
    {
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key)) s_setValF32(ctx.DangerousGetHandle(), k, value);
    }

    public static void SetBool(GgufContextHandle ctx, string key, bool value)
    {
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key)) s_setValBool(ctx.DangerousGetHandle(), k, value ? (byte)1 : (byte)0);
    }

    public static void SetStringArray(GgufContextHandle ctx, string key, IReadOnlyList<string> values)
    {
        // One UTF-8 block with NUL terminators, and pointers into it; gguf copies the strings.
        var offsets = new int[values.Count];
        var block = new List<byte>();
        for (int i = 0; i < values.Count; i++)
        {
            offsets[i] = block.Count;
            block.AddRange(LlamaNative.NullTerminatedUtf8(values[i]));
        }
        var bytes = block.ToArray();
        var pointers = new byte*[values.Count];
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key))
        fixed (byte* b = bytes)
        fixed (byte** p = pointers)
        {
            for (int i = 0; i < offsets.Length; i++) p[i] = b + offsets[i];
            s_setArrStr(ctx.DangerousGetHandle(), k, p, (nuint)values.Count);
        }
    }

    public static void SetFloat32Array(GgufContextHandle ctx, string key, ReadOnlySpan<float> values)
    {
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key))
        fixed (float* v = values)
            s_setArrData(ctx.DangerousGetHandle(), k, (int)GgufType.Float32, v, (nuint)values.Length);
    }

    public static void SetInt32Array(GgufContextHandle ctx, string key, ReadOnlySpan<int> values)
    {
        fixed (byte* k = LlamaNative.NullTerminatedUtf8(key))
        fixed (int* v = values)
            s_setArrData(ctx.DangerousGetHandle(), k, (int)GgufType.Int32, v, (nuint)values.Length);
    }

    /// <summary>Index of the tensor named <paramref name="name"/>, or -1.</summary>
    public static long FindTensor(GgufContextHandle ctx, string name)
    {
        fixed (byte* n = LlamaNative.NullTerminatedUtf8(name)) return s_findTensor(ctx.DangerousGetHandle(), n);
    }

    /// <summary>Adds a tensor description; ABORTS the process if the name exists (check <see cref="FindTensor"/> first).</summary>
    public static void AddTensorUnchecked(GgufContextHandle ctx, in GgmlTensorStruct tensor)
    {
        fixed (GgmlTensorStruct* t = &tensor) s_addTensor(ctx.DangerousGetHandle(), t);
    }

    public static long TensorCount(GgufContextHandle ctx) => s_getTensorCount(ctx.DangerousGetHandle());

    /// <summary>Writes the metadata and the tensors' data (read through their data pointers) to a .gguf file.</summary>
    public static bool WriteToFile(GgufContextHandle ctx, string path, bool onlyMetadata)
    {
        fixed (byte* p = LlamaNative.NullTerminatedUtf8(path)) return s_writeToFile(ctx.DangerousGetHandle(), p, onlyMetadata ? (byte)1 : (byte)0) != 0;
    }
}

/// <summary>A GGUF metadata context that refuses duplicate tensor names instead of letting gguf abort the process.</summary>
internal sealed class GgufBuilder : IDisposable
{
    readonly HashSet<string> _tensorNames = new(StringComparer.Ordinal);

    public GgufContextHandle Context { get; } = GgufNative.InitEmpty();

    /// <summary>Adds a tensor description; throws <see cref="ArgumentException"/> on a duplicate name.</summary>
    public void AddTensor(in GgmlTensorStruct tensor, string name)
    {
        if (!_tensorNames.Add(name) || GgufNative.FindTensor(Context, name) >= 0)
            throw new ArgumentException($"GGUF tensor '{name}' was added twice (gguf would abort the process).", nameof(name));
        GgufNative.AddTensorUnchecked(Context, tensor);
    }

    public void Dispose() => Context.Dispose();
}
