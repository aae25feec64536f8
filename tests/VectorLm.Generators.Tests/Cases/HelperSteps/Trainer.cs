using System;
using VectorLm;

namespace Samples.Helpers;

/// <summary>The loop calls helpers that step and clip; the generator intercepts them where they are.</summary>
[DistributedTrainer]
public partial class HelperSteps
{
    /// <summary>Which helper steps: helper, extension or local.</summary>
    [Option] public string Mode { get; init; } = "helper";

    public void Train(TrainerContext ctx)
    {
        var (parameters, _) = Lab.Run(Mode, ctx.Rank, ctx.WorldSize, steps: 3);
        if (ctx.IsMainRank) Console.WriteLine($"{Mode}: {string.Join(" ", parameters)}");
    }
}
