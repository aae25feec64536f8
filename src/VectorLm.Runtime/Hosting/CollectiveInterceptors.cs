using System.Runtime.CompilerServices;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Hosting;

/// <summary>
/// What the generator's interceptors call in place of single-device calls inside a [DistributedTrainer] class.
/// Each method is correct for any world size, including 1.
/// </summary>
public static class CollectiveInterceptors
{
    /// <summary>
    /// Replaces <c>optimizer.step()</c>: averages the gradients of the optimizer's parameters over ranks,
    /// steps, then marks the context's samplers stale.
    /// </summary>
    /// <remarks>SKELETON: no gradient all-reduce yet (world size 1 only); the distributed runtime issue adds it.</remarks>
    [Collective]
    public static Tensor OptimizerStep(optim.Optimizer optimizer, Func<Tensor>? closure,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var ctx = TrainerContextScope.Current;
        var loss = optimizer.step(closure);
        ctx?.NotifyWeightsChanged();
        return loss;
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
