using static TorchSharp.torch;

namespace VectorLm.Hosting;

/// <summary>
/// Entry point the generated <c>Run</c> method calls. In the launching process it fans out one process per rank;
/// in a rank process it sets up the process group, device, seeds and logging, then runs the training body.
/// </summary>
/// <remarks>SKELETON (foundation): runs the body in-process with world size 1. The distributed runtime issue adds the launcher.</remarks>
public static class TrainerHost
{
    /// <summary>Runs <paramref name="train"/> on every rank and returns the process exit code.</summary>
    public static int Run(LaunchOptions options, Func<TrainerContext, CancellationToken, Task> train)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(train);
        if (options.WorldSize != 1) throw new NotSupportedException("world sizes above 1 need the distributed runtime");
        manual_seed(options.Seed);
        using var ctx = TrainerContext.SingleProcess();
        using var current = TrainerContextScope.Enter(ctx);
        using var cts = new CancellationTokenSource();
        train(ctx, cts.Token).GetAwaiter().GetResult();
        return 0;
    }
}
