using System.Diagnostics;
using System.Text.RegularExpressions;

namespace VectorLm.Distributed.Tests;

/// <summary>Starts the worker program as a launcher (world size N) and checks what the user would see.</summary>
public class LauncherTests
{
    static readonly string WorkerDll = Path.Combine(
        AppContext.BaseDirectory.Replace("VectorLm.Distributed.Tests", "VectorLm.Distributed.Worker"), "VectorLm.Distributed.Worker.dll");

    sealed record Result(int ExitCode, string Output, int[] RankPids);

    static Process Start(params string[] args) => StartWith(new Dictionary<string, string>(), args);

    static Process StartWith(Dictionary<string, string> env, params string[] args)
    {
        Assert.True(File.Exists(WorkerDll), $"worker not built at {WorkerDll}");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(WorkerDll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment.Remove("RANK");
        psi.Environment.Remove("SLURM_PROCID");
        psi.Environment.Remove("MASTER_PORT");
        psi.Environment.Remove("VECTORLM_JOB_TOKEN");
        foreach (var (k, v) in env) psi.Environment[k] = v;
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
    public void Ctrl_C_on_the_launcher_reaches_every_rank_loop_and_the_job_exits_130()
    {
        using var p = Start("sleep", "2");
        var ranks = WaitForRankPids(p, 2, out var output);
        // Signal only once both loops hold their token: a signal before the rank's handler is installed is a different path.
        WaitForLine(output, "[rank0] ready");
        WaitForLine(output, "[rank1] ready");
        // A job started in the background by a non-interactive shell inherits SIGINT ignored, and the launcher then
        // ignores it as every program should; SIGTERM takes the same stop path there.
        bool term = SigIntIgnoredByThisProcess();
        Signal(p.Id, term ? "-TERM" : "-INT");
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "the launcher ignored Ctrl+C");
        Assert.Equal(term ? 143 : 130, p.ExitCode);
        AssertAllGone(ranks);
        // The ranks stopped through their loops' token, not by the launcher's kill after the grace period.
        string text = output();
        string name = term ? "SIGTERM" : "SIGINT";
        Assert.Contains($"[rank0] stopped by {name}", text);
        Assert.Contains($"[rank1] stopped by {name}", text);
    }

    [Fact]
    public void SIGTERM_stops_a_loop_that_only_calls_collectives_with_exit_143()
    {
        using var p = Start("collective-loop", "2");
        var ranks = WaitForRankPids(p, 2, out var output);
        WaitForLine(output, "[rank1] ready");
        Signal(p.Id, "-TERM");
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(60)), "the job did not stop");
        Assert.Equal(143, p.ExitCode);
        AssertAllGone(ranks);
        string text = output();
        Assert.Contains("launcher: SIGTERM; stopping 2 rank(s)", text);
        Assert.Contains("[rank0] stopped by SIGTERM", text);
        Assert.Contains("[rank1] stopped by SIGTERM", text);
    }

    [Fact]
    public void A_second_signal_ends_a_rank_that_ignores_the_first()
    {
        // One rank started as torchrun would (no launcher), running a loop that never looks at its token.
        using var p = StartWith(new() { ["RANK"] = "0", ["WORLD_SIZE"] = "1", ["MASTER_PORT"] = "0" }, "stubborn", "1");
        var pid = WaitForRankPids(p, 1, out var output).Single();
        WaitForLine(output, "ready");
        Signal(pid, "-TERM");
        WaitForLine(output, "SIGTERM: stopping (send it again to exit at once)");
        Thread.Sleep(StopWindow); // a copy of the same signal within the window would count as the first
        Assert.False(p.HasExited, "one signal must only ask the loop to stop");
        Signal(pid, "-TERM");
        Assert.True(p.WaitForExit(TimeSpan.FromSeconds(20)), "the second signal did not end the process");
        Assert.Equal(143, p.ExitCode); // killed by SIGTERM, as a shell reports it
        Assert.Contains("second stop signal: exiting now", output());
    }

    [Fact]
    public void A_two_rank_job_runs_to_completion_while_strangers_send_junk_to_its_store()
    {
        int port = VectorLm.Hosting.RankLauncher.FreePort();
        string stopFile = Path.Combine(Path.GetTempPath(), $"vectorlm-fuzz-{Guid.NewGuid():N}");
        const string token = "fuzz-test-token";
        using var p = StartWith(new() { ["MASTER_PORT"] = port.ToString(), ["VECTORLM_JOB_TOKEN"] = token, ["VECTORLM_TEST_STOP_FILE"] = stopFile },
            "steady", "2");
        try
        {
            var ranks = WaitForRankPids(p, 2, out var output);
            WaitForLine(output, "[rank0] ready");
            var random = new Random(42);
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
            // Four bytes read as a negative length: what killed rank 0 before the store checked its input.
            Junk(port, [0xFF, 0xFF, 0xFF, 0xFF]);
            Junk(port, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"u8.ToArray());
            for (int i = 0; i < 120 && DateTime.UtcNow < deadline; i++)
            {
                var junk = new byte[random.Next(1, 48)];
                random.NextBytes(junk);
                if (i % 2 == 0)
                {
                    // past the hello with the right token, then a random (often truncated) frame
                    var hello = new byte[6 + token.Length];
                    "VLS1"u8.CopyTo(hello);
                    hello[4] = (byte)token.Length;
                    System.Text.Encoding.ASCII.GetBytes(token).CopyTo(hello, 6);
                    if (junk.Length >= 5)
                    {
                        BitConverter.GetBytes(junk.Length - 4 + random.Next(0, 3)).CopyTo(junk, 0);
                        junk[4] = (byte)random.Next(3, 8); // Add, Wait, Check, Delete, or unknown: never touches the job's keys
                        if (junk[4] == 4) junk[^1] = 0;
                    }
                    Junk(port, [.. hello, .. junk]);
                }
                else Junk(port, junk);
            }
            File.WriteAllText(stopFile, "stop");
            Assert.True(p.WaitForExit(TimeSpan.FromSeconds(90)), "the job did not finish");
            string text = output();
            Assert.True(p.ExitCode == 0, text);
            Assert.Contains("[rank0] ok after", text);
            Assert.Contains("[rank1] ok after", text);
            Assert.Contains("[rank0] vectorlm store: closed a connection from 127.0.0.1", text); // logged, not fatal
            AssertAllGone(ranks);
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
            File.Delete(stopFile);
        }
    }

    static void Junk(int port, byte[] bytes)
    {
        using var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        s.Connect(System.Net.IPAddress.Loopback, port);
        try { s.Send(bytes); } catch (System.Net.Sockets.SocketException) { }
        s.Shutdown(System.Net.Sockets.SocketShutdown.Send);
    }

    static readonly TimeSpan StopWindow = TimeSpan.FromSeconds(1.5);

    static void Signal(int pid, string signal)
    {
        using var kill = Process.Start("kill", [signal, pid.ToString()]);
        kill.WaitForExit();
    }

    static void WaitForLine(Func<string> output, string line)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!output().Contains(line) && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.True(output().Contains(line), $"no line '{line}' in:\n{output()}");
    }

    static bool SigIntIgnoredByThisProcess()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0; // SIGINT = 2
    }

    static int[] WaitForRankPids(Process p, int count) => WaitForRankPids(p, count, out _);

    /// <summary>Waits for the ranks' pid lines; <paramref name="output"/> returns everything printed so far.</summary>
    static int[] WaitForRankPids(Process p, int count, out Func<string> output)
    {
        var pids = new List<int>();
        var text = new System.Text.StringBuilder();
        var pumps = new List<Task>();
        // Once the launcher has exited, read its pipes to the end first: the readers run behind the process.
        output = () =>
        {
            if (p.HasExited) Task.WaitAll([.. pumps], TimeSpan.FromSeconds(10));
            lock (text) return text.ToString();
        };
        void Pump(StreamReader reader) => pumps.Add(Task.Run(() =>
        {
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                lock (text) text.AppendLine(line);
                var m = Regex.Match(line, @"pid \d+ (\d+)");
                if (m.Success) lock (pids) pids.Add(int.Parse(m.Groups[1].Value));
            }
        }));
        Pump(p.StandardOutput);
        Pump(p.StandardError);
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
