using System;
using System.IO;
using VectorLm;

namespace Samples.Options
{
    /// <summary>How the data is ordered.</summary>
    public enum DataOrder
    {
        Sequential,
        Shuffled,
    }

    /// <summary>Every option type the generated command line supports.</summary>
    [DistributedTrainer]
    public partial class AllOptionTypes
    {
        /// <summary>Run name, used in <c>logs/</c>.</summary>
        [Option] public string Name { get; set; } = "run";
        /// <summary>Optional tag.</summary>
        [Option] public string? Tag { get; set; }
        /// <summary>Compile the model.</summary>
        [Option] public bool Compile { get; set; }
        [Option] public byte Bits { get; set; } = 8;
        [Option] public short Heads { get; set; } = 4;
        [Option] public int Steps { get; set; } = 100;
        [Option] public int? MaxSteps { get; set; }
        [Option] public long Tokens { get; set; } = 1_000_000L;
        [Option] public float Dropout { get; set; } = 0.1f;
        [Option] public double LearningRate { get; set; } = 3e-4;
        [Option] public decimal Budget { get; set; } = 12.5m;
        [Option] public decimal? MaxBudget { get; set; }
        [Option] public TimeSpan CheckpointEvery { get; set; } = TimeSpan.FromMinutes(10);
        [Option] public FileInfo? Dataset { get; set; }
        [Option] public DirectoryInfo? OutputDir { get; set; }
        [Option] public DataOrder Order { get; set; } = DataOrder.Shuffled;
        [Option] public DataOrder? EvalOrder { get; set; }
        [Option] public string[] Prompts { get; set; } = ["hello", "world"];
        [Option] public int[] EvalSteps { get; set; } = [];
        [Option] public double[] Betas { get; init; } = [0.9, 0.95];
        /// <summary>Ignored: the attribute's description wins.</summary>
        [Option(Name = "lr-warmup", Description = "Warm-up steps of the learning-rate schedule.")] public int WarmupSteps { get; private set; } = 10;
        [Option] public int HTTPPort { get; set; } = 8080;

        public void Train(TrainerContext ctx)
        {
        }
    }
}
