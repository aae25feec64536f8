using System.Threading;
using TorchSharp;
using VectorLm;

namespace Samples.Cancellable;

/// <summary>The synchronous form that takes the stop token (cancelled by Ctrl+C or SIGTERM).</summary>
[DistributedTrainer]
public partial class CancellableTrainer
{
    [Option] public int Steps { get; init; } = 3;

    public void Train(TrainerContext ctx, CancellationToken ct)
    {
        using var model = torch.nn.Linear(2, 2);
        var optimizer = torch.optim.SGD(model.parameters(), 0.1);
        for (var step = 0; step < Steps && !ct.IsCancellationRequested; step++)
            optimizer.step();
    }
}
