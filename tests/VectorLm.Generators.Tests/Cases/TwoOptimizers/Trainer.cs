using System;
using TorchSharp;
using TorchSharp.Modules;
using VectorLm;
using VectorLm.Sampling;

namespace Samples.Gan;

/// <summary>Two models, two optimizers; steps inside a lambda and a local function are intercepted too.</summary>
[DistributedTrainer]
public partial class TwoOptimizers
{
    [Option] public int Steps { get; init; } = 2;

    public ISamplingEngine? Sampler { get; init; }

    public void Train(TrainerContext ctx)
    {
        using var generator = torch.nn.Linear(2, 2);
        using var critic = torch.nn.Linear(2, 1);
        AdamW generatorOptimizer = torch.optim.AdamW(generator.parameters());
        torch.optim.Optimizer criticOptimizer = torch.optim.SGD(critic.parameters(), 0.01);
        Action stepCritic = () => criticOptimizer.step();
        for (var i = 0; i < Steps; i++)
        {
            stepCritic();
            StepGenerator();
        }
        Sampler?.Generate(["done"]);

        void StepGenerator() => generatorOptimizer.step();
    }
}
