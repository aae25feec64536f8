using System.Runtime.InteropServices;
using TorchSharp;

namespace VectorLm.Native;

/// <summary>
/// libtorch's autocast switches (<c>at::autocast</c> in <c>libtorch_cpu.so</c>), which TorchSharp 0.107 does not
/// surface: the same thread-local state Python's <c>torch.autocast</c> sets, so every op TorchSharp dispatches on this
/// thread follows PyTorch's autocast op lists (matmuls in the low dtype, softmax, norms and losses in float32).
/// </summary>
/// <remarks>
/// Bound by their Itanium C++ names from the copy of <c>libtorch_cpu.so</c> TorchSharp loaded (found through
/// <c>/proc/self/maps</c>), so the state changed is the one TorchSharp's ops read. <c>c10::DeviceType</c> and
/// <c>c10::ScalarType</c> are <c>int8_t</c> enums. The functions exist with these signatures since libtorch 2.4.
/// </remarks>
internal static unsafe class LibTorchAutocast
{
    const string Library = "libtorch_cpu.so";

    static readonly Lazy<Entries> s_entries = new(Bind);

    sealed class Entries
    {
        public delegate* unmanaged[Cdecl]<sbyte, byte, void> SetEnabled;
        public delegate* unmanaged[Cdecl]<sbyte, byte> IsEnabled;
        public delegate* unmanaged[Cdecl]<sbyte, sbyte, void> SetDtype;
        public delegate* unmanaged[Cdecl]<long> IncrementNesting;
        public delegate* unmanaged[Cdecl]<long> DecrementNesting;
        public delegate* unmanaged[Cdecl]<void> ClearCache;
    }

    static Entries Bind()
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException($"VectorLm binds libtorch's autocast through /proc/self/maps (Linux only).");
        // Any torch call makes TorchSharp load libtorch (and with it libtorch_cpu) if it has not yet.
        _ = torch.cuda.is_available();
        string path = LoadedNativeLibraries.FindLoadedPath(Library)
            ?? throw new DllNotFoundException($"TorchSharp initialised but {Library} is not mapped into the process; mixed precision needs libtorch's autocast");
        IntPtr handle = NativeLibrary.Load(path);
        IntPtr Get(string mangled, string readable) =>
            NativeLibrary.TryGetExport(handle, mangled, out var p) ? p
                : throw new EntryPointNotFoundException($"{path} does not export {readable} ({mangled}); bf16-mixed needs libtorch 2.4 or later");
        return new Entries
        {
            SetEnabled = (delegate* unmanaged[Cdecl]<sbyte, byte, void>)Get("_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb", "at::autocast::set_autocast_enabled(DeviceType, bool)"),
            IsEnabled = (delegate* unmanaged[Cdecl]<sbyte, byte>)Get("_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE", "at::autocast::is_autocast_enabled(DeviceType)"),
            SetDtype = (delegate* unmanaged[Cdecl]<sbyte, sbyte, void>)Get("_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE", "at::autocast::set_autocast_dtype(DeviceType, ScalarType)"),
            IncrementNesting = (delegate* unmanaged[Cdecl]<long>)Get("_ZN2at8autocast17increment_nestingEv", "at::autocast::increment_nesting()"),
            DecrementNesting = (delegate* unmanaged[Cdecl]<long>)Get("_ZN2at8autocast17decrement_nestingEv", "at::autocast::decrement_nesting()"),
            ClearCache = (delegate* unmanaged[Cdecl]<void>)Get("_ZN2at8autocast11clear_cacheEv", "at::autocast::clear_cache()"),
        };
    }

    /// <summary>Whether autocast is on for <paramref name="device"/> on this thread.</summary>
    public static bool IsEnabled(DeviceType device) => s_entries.Value.IsEnabled(Code(device)) != 0;

    /// <summary>
    /// Turns autocast on for <paramref name="device"/> with <paramref name="dtype"/> on this thread, as entering
    /// <c>torch.autocast</c> does; returns the state to hand to <see cref="Exit"/>.
    /// </summary>
    public static (bool WasEnabled, DeviceType Device) Enter(DeviceType device, torch.ScalarType dtype)
    {
        var e = s_entries.Value;
        sbyte code = Code(device);
        bool was = e.IsEnabled(code) != 0;
        e.SetDtype(code, (sbyte)dtype);
        e.SetEnabled(code, 1);
        e.IncrementNesting();
        return (was, device);
    }

    /// <summary>
    /// Restores the state before <see cref="Enter"/>. Leaving the outermost region clears the cache of low-precision
    /// weight copies, as <c>torch.autocast.__exit__</c> does: a copy kept past an optimizer step would be stale.
    /// </summary>
    public static void Exit((bool WasEnabled, DeviceType Device) state)
    {
        var e = s_entries.Value;
        if (e.DecrementNesting() == 0) e.ClearCache();
        e.SetEnabled(Code(state.Device), state.WasEnabled ? (byte)1 : (byte)0);
    }

    static sbyte Code(DeviceType device) => device switch
    {
        DeviceType.CPU => 0,
        DeviceType.CUDA => 1,
        _ => throw new NotSupportedException($"autocast on {device} is not supported by VectorLm; use CPU or CUDA"),
    };
}
