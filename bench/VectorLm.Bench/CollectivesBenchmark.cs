using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using VectorLm.Distributed;
using VectorLm.Distributed.Nccl;
using VectorLm.Hosting;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// All-reduce bus bandwidth with 2 rank processes started by the VectorLm launcher.
/// <c>collectives</c> (tcp): 1 MB to 256 MB over loopback, beside the raw loopback TCP throughput of the same
/// payload between the same two processes (the ceiling). <c>collectives nccl [--torch-script F] [--python P]</c>
/// (GPU machine): checks every NCCL collective, then measures 1 MB to 1 GiB, and runs PyTorch's
/// <c>dist.all_reduce</c> of 1 GiB through torchrun in the same run for the ratio. <c>collectives nccl-desync</c>:
/// with <c>VECTORLM_DESYNC_DEBUG=1</c> a Barrier-vs-AllReduce mismatch must fail (the script checks the output).
/// Bus bandwidth as nccl-tests defines it: busbw = bytes / time * 2(n-1)/n.
/// </summary>
public sealed class CollectivesBenchmark : IBenchmark
{
    const string OutVariable = "VECTORLM_BENCH_COLLECTIVES_OUT";

    public string Name => "collectives";

    public string Description => "all-reduce bus bandwidth: tcp vs raw loopback TCP (default), or nccl vs PyTorch (arg: nccl)";

    public BenchReport Run(string[] args)
    {
        string mode = args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal) ? args[0] : "tcp";
        if (mode is not ("tcp" or "nccl" or "nccl-desync")) throw new ArgumentException($"unknown mode '{mode}'; use tcp, nccl or nccl-desync");

        var options = new LaunchOptions { NProcPerNode = 2, Backend = mode == "tcp" ? DistributedBackend.Tcp : DistributedBackend.Nccl, Threads = 1 };
        if (DistributedEnvironment.IsLaunchedRank())
        {
            // A rank process: do the work, hand rank 0's rows to the launcher through a file, never return to Program.
            int code = TrainerHost.Run(options, (ctx, _) =>
            {
                var rows = mode switch
                {
                    "tcp" => MeasureTcp(ctx),
                    "nccl" => MeasureNccl(ctx),
                    _ => DesyncOnNccl(ctx),
                };
                if (ctx.IsMainRank) File.WriteAllText(Environment.GetEnvironmentVariable(OutVariable)!, rows.ToJsonString());
                return Task.CompletedTask;
            });
            Environment.Exit(code);
        }

        string loadBefore = BenchReport.LoadAverage();
        string outFile = Path.GetTempFileName();
        Environment.SetEnvironmentVariable(OutVariable, outFile);
        int exit = TrainerHost.Run(options, (_, _) => Task.CompletedTask);
        if (exit != 0) throw new InvalidOperationException($"the benchmark ranks failed (exit code {exit}); see their output above");
        var measured = JsonNode.Parse(File.ReadAllText(outFile))!.AsArray();
        File.Delete(outFile);

        // Loopback throughput is CPU work: on a shared machine the load says how much the numbers can be trusted.
        var report = new BenchReport(mode == "tcp" ? "collectives" : "collectives-" + mode, loadBefore);
        foreach (var row in measured)
            report.Add(row!.AsObject().Select(kv => (kv.Key, (object?)Value(kv.Value))).ToArray());

        if (mode == "tcp")
        {
            report.Notes.Add("2 rank processes on one machine over loopback; ceiling = raw one-way TCP throughput of the same payload between the same two processes, measured in the same run, alternating round by round with the all-reduce; busbw, ceiling and their ratio are medians over the rounds, best_* the best round of each");
            report.Notes.Add("busbw = bytes / time * 2(n-1)/n (nccl-tests); goal busbw_ratio >= 0.5 from 64 MB up");
        }
        else if (mode == "nccl")
        {
            report.Notes.Add("2 ranks, one GPU each; correctness of every NCCL collective was checked before timing (the run fails otherwise)");
            if (Arg(args, "--torch-script") is { } script)
                AddTorchComparison(report, script, Arg(args, "--python") ?? "python3");
            else report.Notes.Add("no --torch-script given: no PyTorch comparison");
        }
        return report;
    }

    static object? Value(JsonNode? n) => n is JsonValue v
        ? v.TryGetValue(out long l) ? l : v.TryGetValue(out double d) ? d : v.ToString()
        : n?.ToJsonString();

    static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    // ------------------------------------------------------------------ tcp

    static readonly long[] TcpSizes = [1L << 20, 2L << 20, 4L << 20, 8L << 20, 16L << 20, 32L << 20, 64L << 20, 128L << 20, 256L << 20];

    static JsonArray MeasureTcp(TrainerContext ctx)
    {
        var rows = new JsonArray();
        using var raw = RawLink.Open(ctx);
        foreach (long bytes in TcpSizes)
        {
            using var t = zeros(bytes / 4, dtype: ScalarType.Float32);
            // The machine may be shared: alternate the two measurements round by round so both see the same load,
            // and compare their medians (the best rounds are reported too).
            int rounds = (int)Math.Clamp((1L << 30) / bytes, 9, 41) | 1;
            ctx.AllReduce(t);
            raw.TimeOneWay(ctx, bytes);
            var allReduce = new double[rounds];
            var oneWay = new double[rounds];
            for (int i = 0; i < rounds; i++)
            {
                allReduce[i] = TimeOnce(ctx, () => ctx.AllReduce(t));
                oneWay[i] = raw.TimeOneWay(ctx, bytes);
            }
            int n = ctx.WorldSize;
            double Gbs(double seconds, double factor) => bytes / seconds * factor / 1e9;
            double busFactor = 2.0 * (n - 1) / n;
            double busbw = Gbs(allReduce.Median(), busFactor), ceiling = Gbs(oneWay.Median(), 1);
            rows.Add(new JsonObject
            {
                ["backend"] = "tcp",
                ["bytes"] = bytes,
                ["busbw_gbs"] = Math.Round(busbw, 3),
                ["ceiling_gbs"] = Math.Round(ceiling, 3),
                ["busbw_ratio"] = Math.Round(busbw / ceiling, 3),
                ["best_busbw_gbs"] = Math.Round(Gbs(allReduce.Min(), busFactor), 3),
                ["best_ceiling_gbs"] = Math.Round(Gbs(oneWay.Min(), 1), 3),
                ["rounds"] = rounds,
            });
        }
        return rows;
    }

    /// <summary>Seconds one call of <paramref name="op"/> takes on the slowest rank, all starting together.</summary>
    static double TimeOnce(TrainerContext ctx, Action op)
    {
        ctx.Barrier();
        var sw = Stopwatch.StartNew();
        op();
        return ctx.AllGatherObject(sw.Elapsed.TotalSeconds).Max();
    }

    /// <summary>Seconds per call of <paramref name="op"/>, the slowest rank's (one warm-up call first).</summary>
    static double Time(TrainerContext ctx, int iters, Action op, Action? sync = null)
    {
        op();
        sync?.Invoke();
        ctx.Barrier();
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < iters; i++) op();
        sync?.Invoke();
        double mine = sw.Elapsed.TotalSeconds / iters;
        return ctx.AllGatherObject(mine).Max();
    }

    /// <summary>A plain TCP connection between ranks 0 and 1 with the backend's socket settings: the ceiling.</summary>
    sealed unsafe class RawLink : IDisposable
    {
        readonly Socket _socket;
        readonly TensorMemory.Scratch _buffer = new(256L << 20);

        RawLink(Socket socket) => _socket = socket;

        public static RawLink Open(TrainerContext ctx)
        {
            Socket? listener = null;
            int port = 0;
            if (ctx.Rank == 0)
            {
                listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                listener.Listen(1);
                port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            }
            port = ctx.BroadcastObject(port);
            Socket s;
            if (ctx.Rank == 0) { s = listener!.Accept(); listener.Dispose(); }
            else
            {
                s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                s.Connect(IPAddress.Loopback, port);
            }
            TcpProcessGroup.Configure(s, TimeSpan.FromMinutes(10));
            return new RawLink(s);
        }

        /// <summary>Seconds for rank 0 to send <paramref name="bytes"/> to rank 1 and get a one-byte acknowledgement.</summary>
        public double TimeOneWay(TrainerContext ctx, long bytes)
        {
            Span<byte> ack = stackalloc byte[1];
            ctx.Barrier();
            var sw = Stopwatch.StartNew();
            if (ctx.Rank == 0)
            {
                SocketIO.SendAll(_socket, _buffer.Pointer, bytes, "rank 1");
                SocketIO.ReceiveExactly(_socket, ack, "rank 1");
            }
            else if (ctx.Rank == 1)
            {
                SocketIO.ReceiveExactly(_socket, _buffer.Pointer, bytes, "rank 0");
                SocketIO.SendAll(_socket, ack, "rank 0");
            }
            return ctx.BroadcastObject(sw.Elapsed.TotalSeconds);
        }

        public void Dispose()
        {
            _socket.Dispose();
            _buffer.Dispose();
        }
    }

    // ------------------------------------------------------------------ nccl

    static readonly long[] NcclSizes = [1L << 20, 16L << 20, 64L << 20, 256L << 20, 1L << 30];

    static NcclProcessGroup Nccl(TrainerContext ctx) => ctx.Group as NcclProcessGroup
        ?? throw new InvalidOperationException($"expected the nccl backend, got {ctx.Backend}");

    static JsonArray MeasureNccl(TrainerContext ctx)
    {
        var nccl = Nccl(ctx);
        Console.WriteLine($"rank {ctx.Rank}: {ctx.Device}, NCCL {NcclProcessGroup.LibraryVersion}");
        NcclChecks.RunAll(ctx, nccl);
        var rows = new JsonArray();
        foreach (long bytes in NcclSizes)
        {
            using var t = zeros(bytes / 4, dtype: ScalarType.Float32, device: ctx.Device);
            int iters = bytes >= (256L << 20) ? 20 : 50;
            nccl.Synchronize();
            double seconds = Time(ctx, iters, () => ctx.AllReduce(t), nccl.Synchronize);
            int n = ctx.WorldSize;
            rows.Add(new JsonObject
            {
                ["backend"] = "nccl",
                ["bytes"] = bytes,
                ["busbw_gbs"] = Math.Round(bytes / seconds * 2 * (n - 1) / n / 1e9, 2),
                ["time_ms"] = Math.Round(seconds * 1e3, 4),
            });
        }
        return rows;
    }

    static JsonArray DesyncOnNccl(TrainerContext ctx)
    {
        Nccl(ctx);
        if (ctx.Rank == 0) ctx.Barrier();
        else ctx.AllReduce(ones(4, device: ctx.Device));
        throw new InvalidOperationException("the desync was not detected");
    }

    /// <summary>Runs torchrun with the comparison script and adds its row and the ratio at 1 GiB.</summary>
    static void AddTorchComparison(BenchReport report, string script, string python)
    {
        string outFile = Path.GetTempFileName();
        var psi = new ProcessStartInfo(python) { UseShellExecute = false };
        foreach (var a in new[] { "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", script, "--bytes", (1L << 30).ToString(CultureInfo.InvariantCulture), "--out", outFile })
            psi.ArgumentList.Add(a);
        foreach (var v in new[] { "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", OutVariable })
            psi.Environment.Remove(v);
        using var p = Process.Start(psi)!;
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"the PyTorch comparison failed (exit code {p.ExitCode})");
        var torchRow = JsonNode.Parse(File.ReadAllText(outFile))!.AsObject();
        File.Delete(outFile);
        double torchBusbw = torchRow["busbw_gbs"]!.GetValue<double>();
        report.Add(("backend", "torch-nccl"), ("bytes", torchRow["bytes"]!.GetValue<long>()), ("busbw_gbs", Math.Round(torchBusbw, 2)),
            ("time_ms", torchRow["time_ms"]!.GetValue<double>()));
        foreach (var row in report.Rows.Where(r => r["backend"] as string == "nccl"))
            if (Convert.ToInt64(row["bytes"], CultureInfo.InvariantCulture) == 1L << 30)
            {
                row["ceiling_gbs"] = Math.Round(torchBusbw, 2);
                row["busbw_ratio"] = Math.Round(Convert.ToDouble(row["busbw_gbs"], CultureInfo.InvariantCulture) / torchBusbw, 3);
            }
        report.Notes.Add("nccl rows: ceiling_gbs = PyTorch dist.all_reduce busbw of 1 GiB measured in the same run (goal ratio >= 0.9)");
    }

    /// <summary>Correctness of every NCCL collective against values each rank computes for all ranks.</summary>
    static class NcclChecks
    {
        public static void RunAll(TrainerContext ctx, NcclProcessGroup nccl)
        {
            int n = ctx.WorldSize;
            var dev = ctx.Device;
            int checks = 0;
            Tensor Input(int rank, long count, ScalarType dtype) =>
                (arange(count, dtype: ScalarType.Float64, device: dev) % 13 * (rank + 1) - rank).to_type(dtype);

            foreach (var dtype in new[] { ScalarType.Float32, ScalarType.Float64, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Int64, ScalarType.Int32 })
            foreach (var op in new[] { ReduceOp.Sum, ReduceOp.Avg, ReduceOp.Min, ReduceOp.Max })
            foreach (long count in new long[] { 0, 1, 1000, (1 << 20) + 3 })
            {
                if (op == ReduceOp.Avg && !TensorMemory.IsFloating(dtype)) continue;
                var all = stack(Enumerable.Range(0, n).Select(r => Input(r, count, dtype).to_type(ScalarType.Float64)).ToArray());
                var expected = op switch
                {
                    ReduceOp.Sum => all.sum([0L]),
                    ReduceOp.Avg => all.mean([0L]),
                    ReduceOp.Min => all.min(0).values,
                    _ => all.max(0).values,
                };
                var t = Input(ctx.Rank, count, dtype);
                ctx.AllReduce(t, op);
                double tol = dtype is ScalarType.Float16 or ScalarType.BFloat16 ? 0.05 : 1e-9;
                Check((t.to_type(ScalarType.Float64) - expected).abs().max_or_zero() <= tol * Math.Max(1, expected.abs().max_or_zero()),
                    $"AllReduce {op} {dtype} count {count}");
                checks++;
            }

            for (int root = 0; root < n; root++)
            foreach (long count in new long[] { 0, 1, 4097, 1 << 22 })
            {
                var t = full(count, (double)ctx.Rank + 1, dtype: ScalarType.Float32, device: dev);
                ctx.Broadcast(t, root);
                Check(t.eq(root + 1).all().item<bool>(), $"Broadcast root {root} count {count}");
                checks++;
            }

            foreach (long count in new long[] { 0, 1, 3001 })
            {
                var g = ctx.AllGather(full(count, ctx.Rank * 10L, dtype: ScalarType.Int64, device: dev));
                Check(g.shape.SequenceEqual(new[] { n, count }), $"AllGather shape {string.Join("x", g.shape)}");
                for (int r = 0; r < n; r++) Check(g[r].eq(r * 10L).all().item<bool>(), $"AllGather slot {r} count {count}");
                checks++;
            }

            // Non-contiguous input is staged and written back.
            var m = arange(12, dtype: ScalarType.Float32, device: dev).reshape(3, 4);
            var tr = m.t();
            ctx.AllReduce(tr);
            Check(m.eq(arange(12, dtype: ScalarType.Float32, device: dev).reshape(3, 4) * n).all().item<bool>(), "AllReduce of a transposed view");
            checks++;

            // Group calls: two all-reduces fused into one launch.
            var a = ones(1000, device: dev);
            var b = full(7, 2.0, device: dev);
            nccl.Group(() => { ctx.AllReduce(a); ctx.AllReduce(b); });
            Check(a.eq(n).all().item<bool>() && b.eq(2.0 * n).all().item<bool>(), "grouped AllReduce");
            checks++;

            // Stream-order discipline: ops queued just before and just after the collective, no explicit sync.
            var x = zeros(1 << 24, device: dev);
            x.add_(ctx.Rank + 1);          // queued before
            ctx.AllReduce(x);
            var y = x.mul(2);              // queued after, reads the reduced values
            double want = 2.0 * n * (n + 1) / 2;
            Check(y.eq(want).all().item<bool>(), "ordering of torch ops around a collective on stream 0");
            checks++;

            // CPU tensors and objects travel over the tcp group beside NCCL.
            var cpuT = full(5, (double)ctx.Rank, dtype: ScalarType.Float64);
            ctx.AllReduce(cpuT, ReduceOp.Max);
            Check(cpuT.eq(n - 1).all().item<bool>(), "CPU tensor AllReduce on the nccl backend");
            Check(ctx.AllGatherObject(ctx.Rank).SequenceEqual(Enumerable.Range(0, n)), "AllGatherObject<int>");
            ctx.Barrier();
            nccl.Synchronize();
            checks += 2;
            Console.WriteLine($"rank {ctx.Rank}: {checks} NCCL correctness checks passed");
        }

        static void Check(bool ok, string what)
        {
            if (!ok) throw new InvalidOperationException($"NCCL correctness check failed: {what}");
        }
    }
}

file static class TensorExtensions
{
    public static double Median(this double[] xs) => xs.Order().ElementAt(xs.Length / 2);

    /// <summary>max() that is 0 for an empty tensor (torch refuses max of nothing).</summary>
    public static double max_or_zero(this Tensor t) => t.numel() == 0 ? 0 : t.max().to_type(ScalarType.Float64).item<double>();
}
