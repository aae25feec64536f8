using System.Runtime.InteropServices;
using LLama.Native;

namespace VectorLm.Native;

/// <summary>
/// Handles of the native libraries LLamaSharp (and TorchSharp) already loaded, so this assembly calls into the very
/// same copies: two copies of ggml in one process would each have their own backend registry and allocator state.
/// </summary>
/// <remarks>
/// LLamaSharp picks the best CPU variant (avx512, avx2, ...) at run time and keeps the handle private; the path it
/// chose is read back from the process's memory map, and <see cref="NativeLibrary.Load(string)"/> of an already
/// loaded path returns the existing module (reference counted), never a second copy. Linux only, like the backends
/// this project ships.
/// </remarks>
internal static class LoadedNativeLibraries
{
    static readonly Lazy<IntPtr> LlamaHandle = new(() => LoadLlamaSharpLibrary("libllama.so"));
    static readonly Lazy<IntPtr> GgmlBaseHandle = new(() => LoadLlamaSharpLibrary("libggml-base.so"));
    static readonly Lazy<IntPtr> GgmlHandle = new(() => LoadLlamaSharpLibrary("libggml.so"));
    static readonly Lazy<IntPtr> TorchSharpHandle = new(LoadTorchSharpLibrary);

    /// <summary>libllama, as loaded by LLamaSharp.</summary>
    public static IntPtr Llama => LlamaHandle.Value;

    /// <summary>libggml-base (tensors, backends' buffers, gguf), as loaded by LLamaSharp.</summary>
    public static IntPtr GgmlBase => GgmlBaseHandle.Value;

    /// <summary>libggml (backend registry), as loaded by LLamaSharp.</summary>
    public static IntPtr Ggml => GgmlHandle.Value;

    /// <summary>libLibTorchSharp, as loaded by TorchSharp.</summary>
    public static IntPtr LibTorchSharp => TorchSharpHandle.Value;

    /// <summary>The file a loaded library was mapped from, or null when no such library is loaded.</summary>
    public static string? FindLoadedPath(string fileName)
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            int slash = line.IndexOf('/');
            if (slash < 0) continue;
            var path = line[slash..];
            if (path.EndsWith("/" + fileName, StringComparison.Ordinal)) return path;
        }
        return null;
    }

    static IntPtr LoadLlamaSharpLibrary(string fileName)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException($"VectorLm's llama.cpp interop locates {fileName} through /proc/self/maps (Linux only).");
        // ggml-cpu uses the system libgomp (torch has its own copy), which reads its environment once, when loaded.
        NativeEnvironment.PreferPassiveOpenMpWaits();
        // Forces LLamaSharp's static initialisation: it selects and loads libllama with its ggml dependencies and
        // calls llama_backend_init.
        NativeApi.llama_empty_call();
        var path = FindLoadedPath(fileName)
            ?? throw new DllNotFoundException($"LLamaSharp initialised but {fileName} is not mapped into the process; is a LLamaSharp backend package referenced?");
        return NativeLibrary.Load(path);
    }

    static IntPtr LoadTorchSharpLibrary()
    {
        // Any torch call makes TorchSharp load its native libraries.
        using (global::TorchSharp.torch.zeros(1)) { }
        var path = FindLoadedPath("libLibTorchSharp.so")
            ?? throw new DllNotFoundException("TorchSharp initialised but libLibTorchSharp.so is not mapped into the process.");
        return NativeLibrary.Load(path);
    }

    /// <summary>The address of <paramref name="name"/> in <paramref name="library"/>; throws naming both when absent.</summary>
    public static IntPtr Export(IntPtr library, string name) =>
        NativeLibrary.TryGetExport(library, name, out var address)
            ? address
            : throw new EntryPointNotFoundException($"Native function '{name}' not found; VectorLm expects llama.cpp 815a2a59 as shipped in LLamaSharp 0.30.0.");
}
