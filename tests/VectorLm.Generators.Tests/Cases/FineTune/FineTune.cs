using System.Collections.Generic;
using System.ComponentModel.DataAnnotations;
using TorchSharp;
using VectorLm;

namespace Samples.FineTuning;

/// <summary>Fine-tunes a small model and samples from it every few steps.</summary>
[DistributedTrainer]
public partial class FineTune
{
    /// <summary>Number of optimizer steps.</summary>
    [Option, Range(1, 100_000)] public int Steps { get; init; } = 6;

    /// <summary>Sample every this many steps.</summary>
    [Option, Range(1, int.MaxValue)] public int SampleEvery { get; init; } = 2;

    /// <summary>File that receives one line per sampled completion.</summary>
    [Option] public string? Report { get; init; }

    public void Train(TrainerContext ctx)
    {
        using var model = torch.nn.Linear(4, 1);
        using var sampler = new EchoEngine(ctx);
        var optimizer = torch.optim.AdamW(model.parameters(), lr: 1e-2);
        var lines = new List<string>();
        for (var step = 1; step <= Steps; step++)
        {
            optimizer.zero_grad();
            using var input = torch.ones(8, 4);
            using var loss = model.forward(input).pow(2).mean();
            loss.backward();
            optimizer.step();
            if (step % SampleEvery == 0)
            {
                var completions = sampler.Generate(new[] { "hello" });
                var sample = completions[0].Samples[0];
                lines.Add($"rank {ctx.Rank} step {step}: {sample.Text} v{sample.WeightVersion}");
            }
        }
        if (Report is not null) System.IO.File.AppendAllLines(Report, lines);
    }
}
