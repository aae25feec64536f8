using System.Runtime.InteropServices;

namespace VectorLm.Hosting;

/// <summary>The libc calls the launcher, the ranks and the checkpoints need that .NET does not expose.</summary>
internal static partial class Posix
{
    public const int SIGINT = 2, SIGKILL = 9, SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)] internal static partial int kill(int pid, int signal);
    [LibraryImport("libc")] internal static partial int getppid();

    // Durable checkpoints: fsync of files and folders (.NET cannot open a folder).
    public const int O_RDONLY = 0;
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)] internal static partial int open(string path, int flags);
    [LibraryImport("libc", SetLastError = true)] internal static partial int fsync(int fd);
    [LibraryImport("libc")] internal static partial int close(int fd);

    /// <summary>"SIGSEGV" for 11; null for numbers that are not common signals.</summary>
    public static string? SignalName(int signal) => signal switch
    {
        1 => "SIGHUP", 2 => "SIGINT", 3 => "SIGQUIT", 4 => "SIGILL", 5 => "SIGTRAP", 6 => "SIGABRT", 7 => "SIGBUS",
        8 => "SIGFPE", 9 => "SIGKILL", 10 => "SIGUSR1", 11 => "SIGSEGV", 12 => "SIGUSR2", 13 => "SIGPIPE",
        14 => "SIGALRM", 15 => "SIGTERM",
        _ => null,
    };

    /// <summary><c>SIG_DFL</c>: the signal's default action (for most, ending the process).</summary>
    public const nint SIG_DFL = 0;

    /// <summary>Sets the action of <paramref name="signal"/>; used to die of a signal after .NET's handler took it.</summary>
    [LibraryImport("libc")] internal static partial nint signal(int signal, nint handler);
}
