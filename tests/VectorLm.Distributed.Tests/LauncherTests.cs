using System.Diagnostics;
using System.Text.RegularExpressions;

namespace VectorLm.Distributed.Tests;

/// <summary>Starts the worker program as a launcher (world size N) and checks what the user would see.</summary>
public class LauncherTests
{
    static readonly string WorkerDll = Path.Combine(
        AppContext.BaseDirectory.Replace("VectorLm.Distributed.Tests", "VectorLm.Distributed.Worker"), "VectorLm.Distributed.Worker.dll");

    sealed record Result(int ExitCode, string Output, int[] RankPids);

    static Process Start(params string[] args)
    {
        Assert.True(File.Exists(WorkerDll), $"worker not built at {WorkerDll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(WorkerDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("RANK");
        psi.Environment.Remove("SLURM_PROCID");
        psi.Environment.Remove("MASTER_PORT");
        return Process.Start(psi)!;
    }

    static Result RunLauncher(params string[] args)
    {
        using var p = Start(args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(90)))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("the launcher did not exit: a failed rank did not stop the job");
        }
        string output = stdout.Result + stderr.Result;
        return new Result(p.ExitCode, output, Pids(output));
    }

    static int[] Pids(string output) =>
        Regex.Matches(output, @"\[rank\d+\] pid \d+ (\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToArray();

    static bool Alive(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return !p.HasExited; }
        catch (ArgumentException) { return false; }
    }

    static void AssertAllGone(int[] pids)
    {
        Assert.True(pids.Length > 0, "no rank pid was parsed from the output: the orphan check would check nothing");
        // Stopped ranks are reaped by the launcher before it exits; allow the kernel a moment to tear them down.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (pids.Any(Alive) && DateTime.UtcNow < deadline) Thread.Sleep(100);
        var alive = pids.Where(Alive).ToArray();
        Assert.True(alive.Length == 0, $"orphaned ranks still running: {string.Join(", ", alive)}");
    }

    [Fact]
    public void Ranks_run_with_the_torchrun_environment_and_prefixed_output()
    {
        var r = RunLauncher("collectives", "3");
        Assert.True(r.ExitCode == 0, r.Output);
        for (int rank = 0; rank < 3; rank++)
            Assert.Contains($"[rank{rank}] ok tcp world 3 local {rank} gathered r0,r1,r2", r.Output);
        Assert.Equal(3, r.RankPids.Length);
        AssertAllGone(r.RankPids);
    }

    [Fact]
    public void A_rank_that_throws_fails_the_launcher_and_the_others_are_stopped()
    {
        var r = RunLauncher("throw", "3");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("[rank1] error: System.InvalidOperationException: boom from rank 1", r.Output);
        Assert.Contains("launcher: rank 1 (pid", r.Output);
        Assert.Contains("exited with code 1; stopping the other ranks", r.Output);
        Assert.Equal(3, r.RankPids.Length);
        AssertAllGone(r.RankPids);
    }

    [Fact]
    public void A_rank_killed_by_a_signal_is_reported_with_the_signal()
    {
        var r = RunLauncher("signal", "2");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("was killed by signal SIGKILL (9)", r.Output);
        AssertAllGone(r.RankPids);
    }

    [Fact]
    public void A_desync_across_processes_is_an_error_not_a_hang()
    {
        var r = RunLauncher("desync", "2");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("collective desync at collective #0", r.Output);
        Assert.Matches(@"rank 0: #0 Barrier at Program\.cs:\d+", r.Output);
        Assert.Matches(@"rank 1: #0 AllReduce\(Sum\) float32\[3\] at Program\.cs:\d+", r.Output);
    }

    [Fact]
    public void Ctrl_C_on_the_launcher_stops_every_rank()
    {
        using var p = Start("sleep", "2");
        var ranks = WaitForRankPids(p, 2);
        // A job started in the background by a non-interactive shell inherits SIGINT ignored, and the launcher then
        // ignores it as every program should; SIGTERM takes the same stop-all path there.
        string signal = SigIntIgnoredByThisProcess() ? "-TERM" : "-INT";
        using (var kill = Process.Start("kill", [signal, p.Id.ToString()])) kill.WaitForExit();
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "the launcher ignored Ctrl+C");
        Assert.Equal(130, p.ExitCode);
        AssertAllGone(ranks);
    }

    static bool SigIntIgnoredByThisProcess()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0; // SIGINT = 2
    }

    static int[] WaitForRankPids(Process p, int count)
    {
        var pids = new List<int>();
        _ = Task.Run(() =>
        {
            string? line;
            while ((line = p.StandardOutput.ReadLine()) is not null)
            {
                var m = Regex.Match(line, @"\[rank\d+\] pid \d+ (\d+)");
                if (m.Success) lock (pids) pids.Add(int.Parse(m.Groups[1].Value));
            }
        });
        _ = p.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline) { lock (pids) if (pids.Count == count) break; Thread.Sleep(50); }
        lock (pids)
        {
            Assert.Equal(count, pids.Count);
            return pids.ToArray();
        }
    }

    [Fact]
    public void Killing_the_launcher_leaves_no_orphan_rank()
    {
        using var p = Start("sleep", "2");
        var ranks = WaitForRankPids(p, 2);
        p.Kill(); // SIGKILL to the launcher alone: it cannot clean up, the ranks must notice by themselves
        p.WaitForExit();
        AssertAllGone(ranks);
    }
}
