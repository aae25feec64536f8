using System;
using TorchSharp;
using VectorLm;

namespace Samples.Plain;

/// <summary>No sampler: only the optimizer step is collective. The trainer owns a resource, so Run disposes it.</summary>
[DistributedTrainer]
public partial class NoSampler : IDisposable
{
    [Option] public int Steps { get; init; } = 5;

    readonly torch.nn.Module<torch.Tensor, torch.Tensor> _model = torch.nn.Linear(3, 1);

    public void Train(TrainerContext ctx)
    {
        var optimizer = torch.optim.SGD(_model.parameters(), 0.1);
        for (var i = 0; i < Steps; i++)
        {
            optimizer.zero_grad();
            optimizer.step();
        }
    }

    public void Dispose() => _model.Dispose();
}
