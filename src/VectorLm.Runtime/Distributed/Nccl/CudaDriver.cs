using System.Runtime.InteropServices;

namespace VectorLm.Distributed.Nccl;

/// <summary>
/// The few CUDA driver calls NCCL needs around it. TorchSharp cannot select the current device for a thread, and
/// NCCL reads the calling thread's current device (<c>ncclCommInitRank</c> binds to it; stream 0 means that device's
/// legacy stream). Making the device's primary context current - the context libtorch uses too - fixes both.
/// </summary>
internal static partial class CudaDriver
{
    const string Lib = "libcuda.so.1";

    [LibraryImport(Lib)] private static partial int cuInit(uint flags);
    [LibraryImport(Lib)] private static partial int cuDeviceGet(out int device, int ordinal);
    [LibraryImport(Lib)] private static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(Lib)] private static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(Lib)] private static partial int cuCtxSynchronize();
    [LibraryImport(Lib)] private static partial int cuGetErrorString(int error, out nint text);

    /// <summary>The primary context of device <paramref name="ordinal"/> (retained for the process lifetime).</summary>
    public static nint PrimaryContext(int ordinal)
    {
        Check(cuInit(0), "cuInit");
        Check(cuDeviceGet(out int device, ordinal), "cuDeviceGet");
        Check(cuDevicePrimaryCtxRetain(out nint ctx, device), "cuDevicePrimaryCtxRetain");
        return ctx;
    }

    /// <summary>Makes <paramref name="context"/> current on the calling thread.</summary>
    public static void MakeCurrent(nint context) => Check(cuCtxSetCurrent(context), "cuCtxSetCurrent");

    /// <summary>Waits for all work queued on the current context (benchmarks and tests only).</summary>
    public static void Synchronize() => Check(cuCtxSynchronize(), "cuCtxSynchronize");

    static void Check(int result, string call)
    {
        if (result == 0) return;
        string text = cuGetErrorString(result, out nint p) == 0 && p != 0 ? Marshal.PtrToStringUTF8(p) ?? "" : "";
        throw new DistributedException($"{call} failed: CUDA driver error {result} {text}");
    }
}
