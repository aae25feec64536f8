using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Training;

namespace VectorLm.Runtime.Tests;

/// <summary>
/// A tiny model and its trainer over a fixed stream of 400 tokens (sequences of 32, two a batch, so 8 steps cross an
/// epoch): the run the checkpoint, resume and metrics tests train a few steps of. Disposes both.
/// </summary>
internal sealed class TinyRun : IDisposable
{
    /// <summary>The schedule of the run unless a test names another: 8 steps, 2 of them warm-up.</summary>
    public static TrainerOptions Options { get; } = new() { WarmupSteps = 2, TotalSteps = 8 };

    public LlamaModel Model { get; }
    public Trainer Trainer { get; }

    /// <param name="options">The trainer's options; <see cref="Options"/> when null.</param>
    /// <param name="modelSeed">The seed of the initial weights.</param>
    public TinyRun(TrainerOptions? options = null, long modelSeed = 0)
    {
        Model = LlamaModel.Create(LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 }, seed: modelSeed);
        var tokens = PackedDataset.FromTokenIds(Enumerable.Range(0, 400).Select(i => 3 + i % 250), 32);
        Trainer = new Trainer(Model, new ShardedDataLoader(tokens, batchSize: 2, seed: 5), options ?? Options);
    }

    public void Dispose()
    {
        Trainer.Dispose();
        Model.Dispose();
    }
}
