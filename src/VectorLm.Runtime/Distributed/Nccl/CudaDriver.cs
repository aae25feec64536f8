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
    [LibraryImport(Lib)] private static partial int cuEventCreate(out nint ev, uint flags);
    [LibraryImport(Lib)] private static partial int cuEventRecord(nint ev, nint stream);
    [LibraryImport(Lib)] private static partial int cuEventQuery(nint ev);
    [LibraryImport(Lib, EntryPoint = "cuEventDestroy_v2")] private static partial int cuEventDestroy(nint ev);

    const uint EventDisableTiming = 0x2;
    const int ErrorNotReady = 600;

    /// <summary>An event recorded on <paramref name="stream"/> now (0: the legacy default stream) of the current context.</summary>
    public static nint RecordEvent(nint stream)
    {
        Check(cuEventCreate(out nint ev, EventDisableTiming), "cuEventCreate");
        int r = cuEventRecord(ev, stream);
        if (r != 0) { cuEventDestroy(ev); Check(r, "cuEventRecord"); }
        return ev;
    }

    /// <summary>True once the work queued before <paramref name="ev"/> finished.</summary>
    public static bool EventDone(nint ev)
    {
        int r = cuEventQuery(ev);
        if (r == ErrorNotReady) return false;
        Check(r, "cuEventQuery");
        return true;
    }

    public static void DestroyEvent(nint ev) => cuEventDestroy(ev);

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
