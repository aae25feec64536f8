using System;
using System.Threading;
using System.Threading.Tasks;
using TorchSharp;
using VectorLm;
using VectorLm.Sampling;

namespace Samples.Async;

/// <summary>The async form, sampling through the ISamplingEngine interface.</summary>
[DistributedTrainer]
internal sealed partial class AsyncTrainer
{
    [Option] public int Steps { get; init; } = 3;

    /// <summary>Creates the sampler; tests replace it.</summary>
    public Func<TrainerContext, ISamplingEngine>? SamplerFactory { get; init; }

    public async Task TrainAsync(TrainerContext ctx, CancellationToken ct)
    {
        using var model = torch.nn.Linear(2, 2);
        var optimizer = torch.optim.Adam(model.parameters());
        ISamplingEngine? sampler = SamplerFactory?.Invoke(ctx);
        for (var step = 0; step < Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            await Task.Yield();
            optimizer.step();
            var completions = sampler?.Generate(["prompt"], SamplingParams.Greedy(8));
            if (sampler is not null) _ = sampler.Generate(["a", "b"], new SamplingParams { Temperature = 0.7f });
            _ = completions;
        }
    }
}
