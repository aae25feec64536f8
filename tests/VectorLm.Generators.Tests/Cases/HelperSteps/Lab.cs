using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Samples.Helpers;

/// <summary>
/// A small deterministic training run whose optimizer steps and gradient clips live outside the trainer class: in a
/// static helper class, in an extension method and in a local function of an ordinary class.
/// </summary>
public static class Lab
{
    public const int Batch = 8;

    /// <summary>Trains on this rank's rows of each batch and returns the final parameters and the clip norms seen.</summary>
    public static (float[] Parameters, double[] Norms) Run(string mode, int rank, int worldSize, int steps)
    {
        using var model = nn.Linear(4, 2);
        using (no_grad())
        {
            model.weight!.copy_(arange(8, dtype: float32).reshape(2, 4) / 10 - 0.3);
            model.bias!.copy_(arange(2, dtype: float32) / 5 - 0.1);
        }
        var optimizer = optim.SGD(model.parameters(), 0.05, momentum: 0.9);
        var norms = new List<double>();
        var runner = new LoopRunner();
        for (var step = 0; step < steps; step++)
        {
            var (x, y) = Data(step);
            var rows = Batch / worldSize;
            using var loss = nn.functional.mse_loss(model.forward(x.narrow(0, rank * rows, rows)), y.narrow(0, rank * rows, rows));
            switch (mode)
            {
                case "helper":
                    StepHelper.BackwardAndStep(optimizer, loss);
                    break;
                case "extension":
                    optimizer.zero_grad();
                    loss.backward();
                    norms.Add(optimizer.ClipAndStep(model.parameters(), maxNorm: 0.5));
                    break;
                case "local":
                    runner.Run(optimizer, loss, model);
                    break;
                default:
                    throw new ArgumentException($"unknown mode '{mode}'", nameof(mode));
            }
        }
        return (model.parameters().SelectMany(p => p.detach().cpu().data<float>().ToArray()).ToArray(), norms.ToArray());
    }

    static (Tensor X, Tensor Y) Data(int step)
    {
        var g = new Generator((ulong)(100 + step));
        return (randn(Batch, 4, generator: g), randn(Batch, 2, generator: g));
    }
}

/// <summary>The step moved out of the loop into a static helper class.</summary>
public static class StepHelper
{
    public static void BackwardAndStep(optim.Optimizer optimizer, Tensor loss)
    {
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
    }
}

/// <summary>Clip and step as an extension method on the optimizer; clip_grad_value_ under 'using static' too.</summary>
public static class OptimizerExtensions
{
    public static double ClipAndStep(this optim.Optimizer optimizer, IEnumerable<Parameter> parameters, double maxNorm)
    {
        var list = parameters.ToList();
        nn.utils.clip_grad_value_(list, 10.0);
        var norm = nn.utils.clip_grad_norm_(list, maxNorm);
        optimizer.step();
        return norm;
    }
}

/// <summary>An ordinary class (not a trainer) whose local function steps.</summary>
public sealed class LoopRunner
{
    public void Run(optim.Optimizer optimizer, Tensor loss, nn.Module model)
    {
        model.zero_grad();
        loss.backward();
        Step();

        void Step() => optimizer.step();
    }
}
