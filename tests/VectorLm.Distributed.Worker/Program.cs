using System.Globalization;
using VectorLm;
using VectorLm.Hosting;
using static TorchSharp.torch;

// The program the launcher tests start: `Worker <scenario> <world-size> [collective-timeout-seconds]`.
// Each scenario prints "pid <rank> <pid>" first so tests can check that no rank outlives the launcher.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Worker <collectives|throw|signal|sleep|stubborn|collective-loop|steady|rank1-leaves|desync> <world-size> [timeout-seconds]");
    return 2;
}
string scenario = args[0];
var options = new LaunchOptions
{
    NProcPerNode = int.Parse(args[1], CultureInfo.InvariantCulture),
    // nccl on the GPU machine (bench/gpu/watchdog.sh)
    Backend = Environment.GetEnvironmentVariable("VECTORLM_TEST_BACKEND") is { } backend ? Enum.Parse<DistributedBackend>(backend, ignoreCase: true) : DistributedBackend.Tcp,
    Threads = 1,
    CollectiveTimeout = args.Length > 2 ? TimeSpan.FromSeconds(double.Parse(args[2], CultureInfo.InvariantCulture)) : null,
};

return TrainerHost.Run(options, (ctx, ct) =>
{
    Console.WriteLine($"pid {ctx.Rank} {Environment.ProcessId}");
    switch (scenario)
    {
        case "collectives":
        {
            var t = full(5, ctx.Rank + 1.0f);
            ctx.AllReduce(t);
            float expected = ctx.WorldSize * (ctx.WorldSize + 1) / 2.0f;
            if (t.data<float>().Any(v => v != expected)) throw new InvalidOperationException($"all-reduce gave {t[0].item<float>()}, expected {expected}");
            var names = ctx.AllGatherObject($"r{ctx.Rank}");
            string joined = string.Join(",", names);
            ctx.Barrier();
            Console.WriteLine($"ok {ctx.Backend.ToString().ToLowerInvariant()} world {ctx.WorldSize} local {ctx.LocalRank} gathered {joined}");
            break;
        }
        case "throw":
            if (ctx.Rank == 1) throw new InvalidOperationException("boom from rank 1");
            Thread.Sleep(Timeout.Infinite); // only the launcher can end this rank
            break;
        case "signal":
            if (ctx.Rank == 1) System.Diagnostics.Process.GetCurrentProcess().Kill(); // SIGKILL
            Thread.Sleep(Timeout.Infinite);
            break;
        case "sleep": // a loop that watches its token
            Console.WriteLine("ready");
            ct.WaitHandle.WaitOne();
            ct.ThrowIfCancellationRequested();
            break;
        case "stubborn": // ignores the token: only a second signal ends it
            Console.WriteLine("ready");
            Thread.Sleep(Timeout.Infinite);
            break;
        case "collective-loop": // never looks at the token: the collectives must observe it
            for (long i = 0; ; i++)
            {
                ctx.AllReduce(ones(4));
                ctx.Barrier();
                if (i == 0) Console.WriteLine("ready");
                Thread.Sleep(10);
            }
        case "steady": // collectives until the file named by VECTORLM_TEST_STOP_FILE exists (at most a minute)
        {
            string stopFile = Environment.GetEnvironmentVariable("VECTORLM_TEST_STOP_FILE") ?? throw new ArgumentException("VECTORLM_TEST_STOP_FILE is not set");
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
            long steps = 0;
            for (bool stop = false; !stop; steps++)
            {
                var t = full(4, 1.0f);
                ctx.AllReduce(t);
                if (t[0].item<float>() != ctx.WorldSize) throw new InvalidOperationException($"all-reduce gave {t[0].item<float>()}");
                if (steps == 0) Console.WriteLine("ready");
                // Every rank must leave the loop at the same step, so rank 0 decides for all.
                stop = ctx.BroadcastObject(File.Exists(stopFile) || DateTime.UtcNow > deadline);
                Thread.Sleep(5);
            }
            Console.WriteLine($"ok after {steps} steps");
            break;
        }
        case "rank1-leaves": // rank 1 leaves mid-job (exit 0, so the launcher keeps waiting): rank 0 must fail on its own
        {
            var t = ones(1 << 20, device: ctx.Device);
            ctx.AllReduce(t);
            Console.WriteLine($"ready {t[0].item<float>()} on {ctx.Backend.ToString().ToLowerInvariant()}");
            ctx.Barrier();
            if (ctx.Rank == 1)
            {
                ctx.AllReduce(t); // queued, then the process goes away under it
                Console.WriteLine($"leaving at {DateTime.UtcNow:HH:mm:ss.fff}");
                Environment.Exit(0);
            }
            for (int i = 0; i < 3; i++)
            {
                ctx.AllReduce(t);
                Console.WriteLine($"step {i}: {t[0].item<float>()} at {DateTime.UtcNow:HH:mm:ss.fff}");
            }
            throw new InvalidOperationException("rank 0 finished collectives whose peer had left");
        }
        case "desync":
            if (ctx.Rank == 0) ctx.Barrier();
            else ctx.AllReduce(ones(3));
            break;
        default:
            throw new ArgumentException($"unknown scenario '{scenario}'");
    }
    return Task.CompletedTask;
});
