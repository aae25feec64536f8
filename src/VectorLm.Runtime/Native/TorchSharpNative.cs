using System.Runtime.InteropServices;
using TorchSharp;
using static VectorLm.Native.LoadedNativeLibraries;

namespace VectorLm.Native;

/// <summary>
/// libLibTorchSharp's <c>THSTensor_new</c> (libtorch <c>from_blob</c>): a torch tensor viewing foreign memory without a
/// copy, so <c>view.copy_(source)</c> converts dtype and permutes straight into llama.cpp's (or a staging) buffer.
/// </summary>
internal static unsafe class TorchSharpNative
{
    static readonly delegate* unmanaged[Cdecl]<IntPtr, IntPtr, long*, int, sbyte, sbyte, int, int, byte, IntPtr> s_tensorNew =
        (delegate* unmanaged[Cdecl]<IntPtr, IntPtr, long*, int, sbyte, sbyte, int, int, byte, IntPtr>)Export(LibTorchSharp, "THSTensor_new");

    /// <summary>A CPU tensor of <paramref name="dtype"/> and <paramref name="shape"/> over <paramref name="data"/>; the
    /// caller keeps the memory alive and unchanged in size for the view's lifetime.</summary>
    public static torch.Tensor ViewOf(IntPtr data, ReadOnlySpan<long> shape, torch.ScalarType dtype)
    {
        fixed (long* s = shape)
        {
            var handle = s_tensorNew(data, (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, void>)&KeepMemory, s, shape.Length,
                (sbyte)dtype, (sbyte)dtype, 0, -1, 0);
            if (handle == IntPtr.Zero) throw new InvalidOperationException("THSTensor_new (from_blob) returned null.");
            return torch.Tensor.UnsafeCreateTensor(handle);
        }
    }

    // The memory belongs to llama.cpp or to a staging buffer, never to torch.
    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    static void KeepMemory(IntPtr data) { }
}
