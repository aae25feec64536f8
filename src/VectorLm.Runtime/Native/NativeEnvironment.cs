using System.Runtime.InteropServices;

namespace VectorLm.Native;

/// <summary>
/// Environment variables that native libraries read with getenv. Environment.SetEnvironmentVariable does not reach
/// them (.NET keeps its own copy); libc setenv does. Set them before the library that reads them is loaded.
/// </summary>
internal static partial class NativeEnvironment
{
    /// <summary>Sets <paramref name="name"/> for native code; <paramref name="overwrite"/> false keeps a value the user set.</summary>
    public static void Set(string name, string value, bool overwrite)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        if (SetEnv(name, value, overwrite ? 1 : 0) != 0)
            throw new InvalidOperationException($"setenv({name}) failed with errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>
    /// Makes OpenMP threads (libgomp of torch and of ggml-cpu) sleep instead of spinning when idle, unless the user
    /// chose a policy. With trainer and engine sharing cores, spinning threads slowed 2-thread decode about 10x here.
    /// </summary>
    public static void PreferPassiveOpenMpWaits() => Set("OMP_WAIT_POLICY", "PASSIVE", overwrite: false);

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnv(string name, string value, int overwrite);
}
