using System.Runtime.CompilerServices;
using VectorLm.Distributed;
using VectorLm.Sampling;
using static TorchSharp.torch;
using CallSite = VectorLm.Distributed.CallSite;

namespace VectorLm.Hosting;

/// <summary>
/// What the generator's interceptors call in place of single-device calls inside a [DistributedTrainer] class.
/// Each method is correct for any world size, including 1.
/// </summary>
public static class CollectiveInterceptors
{
    /// <summary>
    /// Replaces <c>optimizer.step()</c>: averages the gradients of the optimizer's parameters over ranks (one
    /// bucketed all-reduce over a flat gradient buffer), steps, then marks the context's samplers stale.
    /// Two ranks with half batches each end with the parameters one rank gets from the whole batch.
    /// </summary>
    [Collective]
    public static Tensor OptimizerStep(optim.Optimizer optimizer, Func<Tensor>? closure,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var ctx = TrainerContextScope.Current;
        if (ctx is { WorldSize: > 1 })
        {
            var reducer = GradientReducer.For(optimizer);
            var site = new CallSite(member, file, line);
            bool averagedAlready = reducer.AveragedBeforeStep;
            reducer.AveragedBeforeStep = false; // consumed by this step, whichever form it takes
            if (closure is null)
            {
                if (!averagedAlready) reducer.AverageGradients(ctx, optimizer.parameters(), site);
            }
            else
            {
                // The closure recomputes the gradients (possibly several times, as LBFGS does): average after each run.
                var inner = closure;
                closure = () =>
                {
                    var l = inner();
                    reducer.AverageGradients(ctx, optimizer.parameters(), site);
                    return l;
                };
            }
        }
        var loss = optimizer.step(closure);
        ctx?.NotifyWeightsChanged();
        return loss;
    }

    /// <summary>
    /// Averages the gradients of <paramref name="optimizer"/>'s parameters over ranks now, for code that must see the
    /// averaged gradients before the step (gradient clipping); the next <see cref="OptimizerStep"/> then steps without
    /// averaging again. A no-op with world size 1 or outside a trainer.
    /// </summary>
    [Collective]
    public static void AverageGradients(optim.Optimizer optimizer,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var ctx = TrainerContextScope.Current;
        if (ctx is not { WorldSize: > 1 }) return;
        var reducer = GradientReducer.For(optimizer);
        reducer.AverageGradients(ctx, optimizer.parameters(), new CallSite(member, file, line));
        reducer.AveragedBeforeStep = true;
    }

    /// <summary>Replaces <c>sampler.Generate(...)</c>: weight sync if stale, then the distributed generate.</summary>
    [Collective]
    public static IReadOnlyList<Completion> Generate(ISamplingEngine engine, IReadOnlyList<string> prompts, SamplingParams? parameters,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(engine);
        engine.SyncWeights(member, file, line);
        return engine.Generate(prompts, parameters, member, file, line);
    }
}
