using System.Runtime.InteropServices;
using static VectorLm.Native.LoadedNativeLibraries;

namespace VectorLm.Native;

/// <summary>The ggml element types the engine uses (values of <c>enum ggml_type</c>).</summary>
internal enum GgmlType
{
    F32 = 0,
    F16 = 1,
    BF16 = 30,
}

/// <summary>
/// The leading fields of <c>struct ggml_tensor</c> (336 bytes on x86-64), used to describe tensors to gguf. Live
/// tensors are read through <see cref="GgmlNative"/> functions, not through this layout.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
internal unsafe struct GgmlTensorStruct
{
    public const int Size = 336;
    public const int MaxName = 64;
    [FieldOffset(0)] public GgmlType Type;
    [FieldOffset(8)] public IntPtr Buffer;
    [FieldOffset(16)] public fixed long Ne[4];
    [FieldOffset(48)] public fixed ulong Nb[4];
    [FieldOffset(248)] public IntPtr Data;
    [FieldOffset(256)] public fixed byte Name[MaxName];

    /// <summary>A contiguous tensor description of <paramref name="type"/> with GGUF dimensions <paramref name="ne"/>.</summary>
    public static GgmlTensorStruct Describe(string name, GgmlType type, ReadOnlySpan<long> ne, IntPtr data = default)
    {
        var utf8 = System.Text.Encoding.UTF8.GetBytes(name);
        if (utf8.Length >= MaxName) throw new ArgumentException($"Tensor name '{name}' is {utf8.Length} bytes; ggml allows at most {MaxName - 1}.", nameof(name));
        if (ne.Length is < 1 or > 4) throw new ArgumentException($"Tensor '{name}' has {ne.Length} dimensions; ggml supports 1 to 4.", nameof(ne));
        var t = new GgmlTensorStruct { Type = type, Data = data };
        ulong stride = (ulong)GgmlNative.ElementSize(type);
        for (int i = 0; i < 4; i++)
        {
            long n = i < ne.Length ? ne[i] : 1;
            t.Ne[i] = n;
            t.Nb[i] = stride;
            stride *= (ulong)n;
        }
        for (int i = 0; i < utf8.Length; i++) t.Name[i] = utf8[i];
        return t;
    }
}

/// <summary>libggml-base tensor and backend-buffer entry points, bound to the copy LLamaSharp loaded.</summary>
internal static unsafe class GgmlNative
{
    static readonly delegate* unmanaged[Cdecl]<IntPtr, nuint> s_nbytes =
        (delegate* unmanaged[Cdecl]<IntPtr, nuint>)Export(GgmlBase, "ggml_nbytes");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte*> s_getName =
        (delegate* unmanaged[Cdecl]<IntPtr, byte*>)Export(GgmlBase, "ggml_get_name");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr> s_getData =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr>)Export(GgmlBase, "ggml_get_data");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, long> s_nelements =
        (delegate* unmanaged[Cdecl]<IntPtr, long>)Export(GgmlBase, "ggml_nelements");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, int, long> s_nrows =
        (delegate* unmanaged[Cdecl]<IntPtr, int, long>)Export(GgmlBase, "ggml_nrows");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, nuint, void> s_backendTensorSet =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, nuint, void>)Export(GgmlBase, "ggml_backend_tensor_set");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, nuint, void> s_backendTensorGet =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, nuint, nuint, void>)Export(GgmlBase, "ggml_backend_tensor_get");
    static readonly delegate* unmanaged[Cdecl]<IntPtr, byte> s_backendBufferIsHost =
        (delegate* unmanaged[Cdecl]<IntPtr, byte>)Export(GgmlBase, "ggml_backend_buffer_is_host");
    static readonly delegate* unmanaged[Cdecl]<int, nuint> s_typeSize =
        (delegate* unmanaged[Cdecl]<int, nuint>)Export(GgmlBase, "ggml_type_size");

    /// <summary>Bytes of a tensor's data.</summary>
    public static long ByteCount(IntPtr tensor) => (long)s_nbytes(tensor);

    public static string Name(IntPtr tensor) => Marshal.PtrToStringUTF8((IntPtr)s_getName(tensor)) ?? "";

    public static IntPtr Data(IntPtr tensor) => s_getData(tensor);

    public static long ElementCount(IntPtr tensor) => s_nelements(tensor);

    public static GgmlType Type(IntPtr tensor) => ((GgmlTensorStruct*)tensor)->Type;

    /// <summary>The tensor's four GGUF dimensions (ne[0] is the contiguous one).</summary>
    public static long[] Dimensions(IntPtr tensor)
    {
        var t = (GgmlTensorStruct*)tensor;
        return [t->Ne[0], t->Ne[1], t->Ne[2], t->Ne[3]];
    }

    /// <summary>True when the tensor's backend buffer is ordinary host memory the CPU may write directly.</summary>
    public static bool IsHostMemory(IntPtr tensor)
    {
        var buffer = ((GgmlTensorStruct*)tensor)->Buffer;
        return buffer != IntPtr.Zero && s_backendBufferIsHost(buffer) != 0;
    }

    /// <summary>Copies <paramref name="size"/> bytes from host memory into a backend tensor (any backend).</summary>
    public static void BackendTensorSet(IntPtr tensor, IntPtr source, long offset, long size) =>
        s_backendTensorSet(tensor, source, (nuint)offset, (nuint)size);

    /// <summary>Copies <paramref name="size"/> bytes of a backend tensor into host memory.</summary>
    public static void BackendTensorGet(IntPtr tensor, IntPtr destination, long offset, long size) =>
        s_backendTensorGet(tensor, destination, (nuint)offset, (nuint)size);

    public static int ElementSize(GgmlType type) => (int)s_typeSize((int)type);
}
