using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Distributed;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Hosting;

/// <summary>
/// Entry point the generated <c>Run</c> method calls. In the launching process it fans out one process per rank;
/// in a rank process it sets up the process group, device, seeds and logging, then runs the training body.
/// </summary>
/// <remarks>
/// Which role a process plays:
/// <list type="bullet">
/// <item>A launcher set <c>RANK</c> (torchrun, the VectorLm launcher) or <c>SLURM_PROCID</c> (srun): this process is one
/// rank; it joins the job described by the environment and ignores <see cref="LaunchOptions.WorldSize"/>.</item>
/// <item>Otherwise, with <c>WorldSize x NNodes</c> above 1: this process is the launcher for this node's ranks.</item>
/// <item>Otherwise: world size 1, in this process, with no process group.</item>
/// </list>
/// </remarks>
public static class TrainerHost
{
    /// <summary>Exit code after Ctrl+C or SIGTERM, as shells report SIGINT.</summary>
    public const int CancelledExitCode = 130;

    /// <summary>Runs <paramref name="train"/> on every rank and returns the process exit code.</summary>
    public static int Run(LaunchOptions options, Func<TrainerContext, CancellationToken, Task> train)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(train);
        try
        {
            RankLauncher.Validate(options);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        if (!DistributedEnvironment.IsLaunchedRank() && options.WorldSize * options.NNodes > 1)
            return RankLauncher.Launch(options);
        return RunRank(options, train);
    }

    static int RunRank(LaunchOptions options, Func<TrainerContext, CancellationToken, Task> train)
    {
        // Before the first torch call: libgomp reads it once, when libtorch loads.
        NativeEnvironment.PreferPassiveOpenMpWaits();
        ParentWatchdog.StartIfLaunched();
        string who = "";
        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            // First Ctrl+C asks the loop to stop; a second one ends the process the default way.
            if (cts.IsCancellationRequested) return;
            e.Cancel = true;
            cts.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            if (cts.IsCancellationRequested) return;
            c.Cancel = true;
            cts.Cancel();
        });
        try
        {
            var env = DistributedEnvironment.Read();
            who = env.WorldSize > 1 && Environment.GetEnvironmentVariable(ParentWatchdog.LauncherPidVariable) is null ? $"rank {env.Rank}: " : "";
            torch.set_num_threads(options.Threads ?? Math.Max(1, Environment.ProcessorCount / Math.Max(1, env.LocalWorldSize)));
            torch.manual_seed(options.Seed);
            if (torch.cuda.is_available()) torch.cuda.manual_seed_all(options.Seed);

            using var ctx = TrainerContext.FromEnvironment(new DistributedOptions
            {
                Backend = options.Backend,
                CollectiveTimeout = options.CollectiveTimeout,
                RendezvousTimeout = options.RendezvousTimeout,
            });
            ctx.Precision = options.Precision is { } precision ? Training.Precision.Parse(precision) : Training.Precision.DefaultFor(ctx.Device);
            ctx.Precision.ApplyGlobalSettings();
            using var scope = TrainerContextScope.Enter(ctx);
            train(ctx, cts.Token).GetAwaiter().GetResult();
            return 0;
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            Console.Error.WriteLine($"{who}cancelled");
            return CancelledExitCode;
        }
        catch (DistributedException e)
        {
            Console.Error.WriteLine($"{who}error: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"{who}error: {e}");
            return 1;
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }
}
