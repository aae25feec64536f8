using System.ComponentModel;
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
/// rank; it joins the job described by the environment and ignores <see cref="LaunchOptions.NProcPerNode"/>.</item>
/// <item>Otherwise, with <c>NProcPerNode x NNodes</c> above 1: this process is the launcher for this node's ranks.</item>
/// <item>Otherwise: world size 1, in this process, with no process group.</item>
/// </list>
/// Only generated code calls it.
/// </remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class TrainerHost
{
    /// <summary>Exit code after Ctrl+C (SIGINT), as shells report a process killed by it.</summary>
    public const int CancelledExitCode = 130;

    /// <summary>Exit code after SIGTERM (kill, scancel, the launcher stopping the job), as shells report it.</summary>
    public const int TerminatedExitCode = 143;

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
        if (!DistributedEnvironment.IsLaunchedRank() && options.NProcPerNode * options.NNodes > 1)
            return RankLauncher.Launch(options);
        return RunRank(options, train);
    }

    static int RunRank(LaunchOptions options, Func<TrainerContext, CancellationToken, Task> train)
    {
        // Before the first torch call: libgomp reads it once, when libtorch loads.
        NativeEnvironment.PreferPassiveOpenMpWaits();
        ParentWatchdog.StartIfLaunched();
        string who = "";
        // SIGINT/SIGTERM cancel the token the loop and the collectives observe; a second one exits at once.
        using var stop = new StopSignals();
        try
        {
            var env = DistributedEnvironment.Read();
            who = env.WorldSize > 1 && Environment.GetEnvironmentVariable(ParentWatchdog.LauncherPidVariable) is null ? $"rank {env.Rank}: " : "";
            torch.set_num_threads(options.Threads ?? DistributedEnvironment.CoresPerRank(Environment.ProcessorCount, env.LocalWorldSize));
            torch.manual_seed(options.Seed);
            if (torch.cuda.is_available()) torch.cuda.manual_seed_all(options.Seed);

            using var ctx = TrainerContext.FromEnvironment(new DistributedOptions
            {
                Backend = options.Backend,
                CollectiveTimeout = options.CollectiveTimeout,
                RendezvousTimeout = options.RendezvousTimeout,
                Cancellation = stop.Token,
            });
            ctx.Precision = options.Precision is { } precision ? Training.Precision.Parse(precision) : Training.Precision.DefaultFor(ctx.Device);
            ctx.Precision.ApplyGlobalSettings();
            using var scope = TrainerContextScope.Enter(ctx);
            stop.Token.ThrowIfCancellationRequested(); // a signal during the rendezvous
            train(ctx, stop.Token).GetAwaiter().GetResult();
            if (stop.Signal != 0) return Stopped(); // the loop returned early because it saw the request
            return 0;
        }
        // A peer that was stopped first closes its connections, so this rank may see that before its own copy of
        // the signal lands: a transport error gets a moment to turn out to be part of a stop.
        catch (Exception e) when (stop.Signal != 0 || (e is DistributedException && stop.AwaitSignal(StopSignals.DuplicateWindow)))
        {
            // Whatever the loop or a collective threw once a stop was asked for is how it stopped.
            return Stopped();
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

        int Stopped()
        {
            Console.Error.WriteLine($"{who}stopped by {Posix.SignalName(stop.Signal)}");
            return stop.ExitCode;
        }
    }
}
