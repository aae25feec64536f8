using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using VectorLm.Distributed;

namespace VectorLm.Hosting;

/// <summary>
/// Fans out one process per rank on this node (what torchrun's agent does): each is a copy of the current program
/// with the same arguments and the torchrun environment, its output prefixed with <c>[rankN]</c>. The first rank to
/// fail stops the others (SIGTERM, then SIGKILL of the whole process tree after a grace period). Ctrl+C or SIGTERM
/// on the launcher is passed on to the ranks, whose training loops see it as a cancelled token and stop; ranks still
/// running after <see cref="SignalGrace"/>, or when a second signal comes, are killed with their children, and the
/// launcher exits 130 (SIGINT) or 143 (SIGTERM). Ranks also stop themselves when the launcher vanishes
/// (<see cref="ParentWatchdog"/>).
/// </summary>
internal sealed class RankLauncher
{
    /// <summary>How long stopped ranks get to exit after SIGTERM before they and their children are killed.</summary>
    internal static TimeSpan StopGrace { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long ranks get to stop after a signal passed on to them, before they and their children are killed.</summary>
    internal static TimeSpan SignalGrace { get; set; } = TimeSpan.FromSeconds(15);

    volatile bool _killNow;
    int _stopSignal;
    readonly LaunchOptions _options;
    readonly TextWriter _out, _err;
    readonly object _writeLock = new();

    RankLauncher(LaunchOptions options, TextWriter stdout, TextWriter stderr)
    {
        _options = options;
        _out = stdout;
        _err = stderr;
    }

    /// <summary>Launches the ranks of this node and returns the launcher's exit code.</summary>
    public static int Launch(LaunchOptions options, TextWriter? stdout = null, TextWriter? stderr = null) =>
        new RankLauncher(options, stdout ?? Console.Out, stderr ?? Console.Error).Run();

    /// <summary>Rejects impossible layouts with messages that name the option and its value.</summary>
    public static void Validate(LaunchOptions o)
    {
        if (o.NProcPerNode < 1) throw new ArgumentException($"--nproc-per-node must be at least 1 (ranks on this node), got {o.NProcPerNode}");
        if (o.NNodes < 1) throw new ArgumentException($"--nnodes must be at least 1, got {o.NNodes}");
        if (o.NodeRank < 0 || o.NodeRank >= o.NNodes) throw new ArgumentException($"--node-rank must be in [0, {o.NNodes}) for --nnodes {o.NNodes}, got {o.NodeRank}");
        if (o.MasterPort is < 0 or > 65535) throw new ArgumentException($"--master-port must be a TCP port (0 to 65535), got {o.MasterPort}");
        if (o.Threads is < 1) throw new ArgumentException($"--threads must be at least 1, got {o.Threads}");
        if (o.Precision is not null && !Training.Precision.All.Any(p => string.Equals(p.Name, o.Precision, StringComparison.OrdinalIgnoreCase)))
            throw new ArgumentException($"--precision must be one of {string.Join(", ", Training.Precision.All.Select(p => p.Name))}, got '{o.Precision}'");
        if (o.Backend is not (DistributedBackend.Auto or DistributedBackend.Tcp or DistributedBackend.Nccl)) throw new ArgumentException($"--backend must be auto, tcp or nccl, got '{o.Backend}'");
        if (o.NNodes > 1 && string.IsNullOrEmpty(o.MasterAddr) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("MASTER_ADDR")))
            throw new ArgumentException("--nnodes > 1 needs --master-addr (or MASTER_ADDR): the host of node 0, reachable from every node");
    }

    int Run()
    {
        Validate(_options);
        int perNode = _options.NProcPerNode;
        int worldSize = perNode * _options.NNodes;
        string addr = _options.MasterAddr ?? Environment.GetEnvironmentVariable("MASTER_ADDR") ?? "127.0.0.1";
        // Several nodes must agree on the port without talking, so only a single-node job picks a free one.
        int port = _options.MasterPort
                   ?? (int.TryParse(Environment.GetEnvironmentVariable("MASTER_PORT"), CultureInfo.InvariantCulture, out int p) ? p
                       : _options.NNodes > 1 ? DistributedEnvironment.DefaultPort : FreePort());
        var (file, args) = CurrentCommandLine();
        // A fresh secret per job keeps strangers off the store and the rank listeners. Nodes of a multi-node job
        // cannot agree on a random one without talking, so there the user's VECTORLM_JOB_TOKEN is used (or none).
        string? token = Environment.GetEnvironmentVariable(DistributedOptions.JobTokenVariable) is { Length: > 0 } given ? given
            : _options.NNodes == 1 ? Convert.ToHexString(RandomNumberGenerator.GetBytes(16)) : null;

        var ranks = new Process[perNode];
        var exits = new BlockingQueue<(int Local, int Code)>();
        void OnSignal(PosixSignalContext c)
        {
            c.Cancel = true;
            int signal = c.Signal == PosixSignal.SIGINT ? Posix.SIGINT : Posix.SIGTERM;
            if (Interlocked.CompareExchange(ref _stopSignal, signal, 0) == 0) exits.Add((-1, 0));
            else _killNow = true; // a second signal: no more waiting
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        try
        {
            for (int local = 0; local < perNode; local++)
            {
                int rank = _options.NodeRank * perNode + local;
                var psi = new ProcessStartInfo(file)
                {
                    UseShellExecute = false,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                    StandardOutputEncoding = Encoding.UTF8,
                    StandardErrorEncoding = Encoding.UTF8,
                };
                foreach (var a in args) psi.ArgumentList.Add(a);
                var env = psi.Environment;
                env["RANK"] = rank.ToString(CultureInfo.InvariantCulture);
                env["LOCAL_RANK"] = local.ToString(CultureInfo.InvariantCulture);
                env["WORLD_SIZE"] = worldSize.ToString(CultureInfo.InvariantCulture);
                env["LOCAL_WORLD_SIZE"] = perNode.ToString(CultureInfo.InvariantCulture);
                env["GROUP_RANK"] = _options.NodeRank.ToString(CultureInfo.InvariantCulture);
                env["MASTER_ADDR"] = addr;
                env["MASTER_PORT"] = port.ToString(CultureInfo.InvariantCulture);
                if (token is not null) env[DistributedOptions.JobTokenVariable] = token;
                env[ParentWatchdog.LauncherPidVariable] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
                if (_options.CollectiveTimeout is { } ct)
                    env[DistributedOptions.CollectiveTimeoutVariable] = ct.TotalSeconds.ToString(CultureInfo.InvariantCulture);
                if (_options.RendezvousTimeout is { } rt)
                    env[DistributedOptions.RendezvousTimeoutVariable] = rt.TotalSeconds.ToString(CultureInfo.InvariantCulture);
                env.Remove("SLURM_PROCID"); // the torchrun variables above describe the job now

                var proc = new Process { StartInfo = psi, EnableRaisingEvents = true };
                string prefix = $"[rank{rank}] ";
                proc.OutputDataReceived += (_, e) => { if (e.Data is not null) Write(_out, prefix + e.Data); };
                proc.ErrorDataReceived += (_, e) => { if (e.Data is not null) Write(_err, prefix + e.Data); };
                int l = local;
                proc.Exited += (_, _) => exits.Add((l, SafeExitCode(proc)));
                if (!proc.Start()) throw new InvalidOperationException($"could not start rank {rank}: {file}");
                ranks[local] = proc;
                proc.BeginOutputReadLine();
                proc.BeginErrorReadLine();
            }

            int running = perNode;
            while (running > 0)
            {
                var (local, code) = exits.Take();
                if (local < 0)
                {
                    int signal = _stopSignal;
                    Write(_err, $"launcher: {Posix.SignalName(signal)}; stopping {running} rank(s) (send it again to kill them at once)");
                    StopAll(ranks, signal, SignalGrace);
                    return 128 + signal;
                }
                running--;
                ranks[local].WaitForExit(); // drains the output pipes
                if (code == 0) continue;
                int rank = _options.NodeRank * perNode + local;
                Write(_err, $"launcher: rank {rank} (pid {SafePid(ranks[local])}) {DescribeExit(code)}; stopping the other ranks");
                StopAll(ranks, Posix.SIGTERM, StopGrace);
                return code is > 0 and < 128 ? code : 1;
            }
            return 0;
        }
        catch
        {
            StopAll(ranks, Posix.SIGTERM, StopGrace);
            throw;
        }
        finally
        {
            foreach (var r in ranks) r?.Dispose();
        }
    }

    /// <summary>"exited with code 3", or "was killed by signal SIGSEGV (11)" for the 128+N codes .NET reports for signals.</summary>
    internal static string DescribeExit(int code) =>
        code > 128 && code <= 128 + 64
            ? $"was killed by signal {Posix.SignalName(code - 128) ?? "#" + (code - 128)} ({code - 128}) (exit status {code})"
            : $"exited with code {code}";

    void StopAll(Process?[] ranks, int signal, TimeSpan grace)
    {
        var alive = ranks.Where(r => r is not null && !HasExited(r)).Cast<Process>().ToList();
        foreach (var r in alive)
            try { Posix.kill(r.Id, signal); } catch (InvalidOperationException) { }
        var deadline = DateTime.UtcNow + grace;
        // Wait in short slices so a second signal cuts the grace short.
        while (!_killNow && DateTime.UtcNow < deadline && alive.Any(r => !HasExited(r))) Thread.Sleep(50);
        foreach (var r in alive)
        {
            // Kill the whole tree: a rank may have started processes of its own.
            try { if (!HasExited(r)) r.Kill(entireProcessTree: true); }
            catch (InvalidOperationException) { }
            catch (System.ComponentModel.Win32Exception) { }
        }
        foreach (var r in alive) r.WaitForExit(TimeSpan.FromSeconds(5));
    }

    static bool HasExited(Process p)
    {
        try { return p.HasExited; }
        catch (InvalidOperationException) { return true; }
    }

    static int SafeExitCode(Process p)
    {
        try { return p.ExitCode; }
        catch (InvalidOperationException) { return 1; }
    }

    static string SafePid(Process p)
    {
        try { return p.Id.ToString(CultureInfo.InvariantCulture); }
        catch (InvalidOperationException) { return "?"; }
    }

    void Write(TextWriter w, string line)
    {
        lock (_writeLock)
        {
            w.WriteLine(line);
            w.Flush();
        }
    }

    /// <summary>A port that was free a moment ago (rank 0 binds it right after; a clash is reported clearly).</summary>
    internal static int FreePort()
    {
        using var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    /// <summary>
    /// How to start another copy of this program: on Linux the exact argv of this process (covers an apphost,
    /// <c>dotnet app.dll</c> and <c>dotnet exec ... app.dll</c> alike); elsewhere the process path plus the entry
    /// assembly when the host is <c>dotnet</c>.
    /// </summary>
    internal static (string File, string[] Args) CurrentCommandLine()
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                var argv = File.ReadAllText("/proc/self/cmdline").Split('\0');
                if (argv.Length > 0 && argv[^1].Length == 0) argv = argv[..^1];
                if (argv.Length > 0)
                    return (Environment.ProcessPath ?? argv[0], argv[1..]);
            }
            catch (IOException) { }
        }
        string path = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find the path of this program to start its ranks");
        var rest = Environment.GetCommandLineArgs()[1..];
        if (Path.GetFileNameWithoutExtension(path) == "dotnet")
        {
            string entry = System.Reflection.Assembly.GetEntryAssembly()?.Location
                           ?? throw new InvalidOperationException("cannot find the entry assembly to start its ranks with dotnet");
            return (path, [entry, .. rest]);
        }
        return (path, rest);
    }

    sealed class BlockingQueue<T>
    {
        readonly Queue<T> _items = new();

        public void Add(T item)
        {
            lock (_items) { _items.Enqueue(item); Monitor.PulseAll(_items); }
        }

        public T Take()
        {
            lock (_items)
            {
                while (_items.Count == 0) Monitor.Wait(_items);
                return _items.Dequeue();
            }
        }
    }
}
