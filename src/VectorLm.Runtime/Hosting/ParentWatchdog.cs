namespace VectorLm.Hosting;

/// <summary>
/// Ends a rank process when the launcher that started it is gone, so no rank outlives its job even when the
/// launcher is killed with SIGKILL. A polling thread is used rather than <c>prctl(PR_SET_PDEATHSIG)</c>: that signal
/// fires when the parent's forking <em>thread</em> exits, and .NET may start processes from pool threads.
/// </summary>
internal static class ParentWatchdog
{
    /// <summary>The launcher exports its process id under this name.</summary>
    public const string LauncherPidVariable = "VECTORLM_LAUNCHER_PID";

    static int s_started;

    /// <summary>Starts watching when this process was started by the VectorLm launcher; otherwise does nothing.</summary>
    public static void StartIfLaunched()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        if (!int.TryParse(Environment.GetEnvironmentVariable(LauncherPidVariable), out int launcher) || launcher <= 1) return;
        if (Interlocked.Exchange(ref s_started, 1) == 1) return;
        new Thread(() =>
        {
            while (true)
            {
                // Reparented (to init or a subreaper): the launcher died without stopping us.
                if (Posix.getppid() != launcher)
                {
                    Console.Error.WriteLine($"the launcher (pid {launcher}) is gone; stopping this rank");
                    Posix.kill(Environment.ProcessId, Posix.SIGKILL);
                }
                Thread.Sleep(200);
            }
        }) { IsBackground = true, Name = "vectorlm-parent-watchdog" }.Start();
    }
}
