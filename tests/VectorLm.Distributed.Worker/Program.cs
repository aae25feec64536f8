using System.Globalization;
using VectorLm;
using VectorLm.Hosting;
using static TorchSharp.torch;

// The program the launcher tests start: `Worker <scenario> <world-size> [collective-timeout-seconds]`.
// Each scenario prints "pid <rank> <pid>" first so tests can check that no rank outlives the launcher.
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: Worker <collectives|throw|signal|sleep|desync> <world-size> [timeout-seconds]");
    return 2;
}
string scenario = args[0];
var options = new LaunchOptions
{
    WorldSize = int.Parse(args[1], CultureInfo.InvariantCulture),
    Backend = "tcp",
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
            var names = ctx.AllGather($"r{ctx.Rank}");
            string joined = string.Join(",", names);
            ctx.Barrier();
            Console.WriteLine($"ok {ctx.Backend} world {ctx.WorldSize} local {ctx.LocalRank} gathered {joined}");
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
        case "sleep":
            Thread.Sleep(Timeout.Infinite);
            break;
        case "desync":
            if (ctx.Rank == 0) ctx.Barrier();
            else ctx.AllReduce(ones(3));
            break;
        default:
            throw new ArgumentException($"unknown scenario '{scenario}'");
    }
    return Task.CompletedTask;
});
