using System.Collections.Concurrent;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;

namespace VectorLm.Distributed.Tests;

/// <summary>Trainer checkpoints at world size 2: what a one-device loop scaled unchanged does (every rank saves).</summary>
public class CheckpointTests
{
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 };
    static readonly TrainerOptions Options = new() { WarmupSteps = 1, TotalSteps = 20 };

    static Trainer NewTrainer(TrainerContext ctx, LlamaModel model) => new(model, new ShardedDataLoader(
        PackedDataset.FromExamples(ArithmeticTask.Generate(64, seed: 2, maxOperand: 9), Tokenizer.ByteLevel(), 32),
        batchSize: 2, seed: 4, rank: ctx.Rank, worldSize: ctx.WorldSize), Options);

    static string NewRoot() => Directory.CreateTempSubdirectory("vlm-ckpt").FullName;

    [Fact]
    public void Every_rank_saving_gets_the_one_checkpoint_rank_0_wrote()
    {
        string root = NewRoot();
        var writers = new ConcurrentBag<string>();
        Trainer.AfterModelWritten = tmp => { if (tmp.StartsWith(root, StringComparison.Ordinal)) writers.Add(tmp); };
        try
        {
            var folders = new string[2];
            DisposeScopeTests.OnRanks(2, ctx =>
            {
                using var model = LlamaModel.Create(Config);
                using var trainer = NewTrainer(ctx, model);
                trainer.Step();
                folders[ctx.Rank] = trainer.SaveCheckpoint(root);
                trainer.Step();
                trainer.SaveCheckpoint(root);
            });
            Assert.Equal(Path.Combine(root, "step-00000001"), folders[0]);
            Assert.Equal(folders[0], folders[1]);
            Assert.Equal(2, writers.Count); // one writer per save, not one per rank
            Assert.Equal(Path.Combine(root, "step-00000002"), Trainer.LatestCheckpoint(root));
            Assert.Empty(Directory.GetDirectories(root, "*.tmp"));
        }
        finally
        {
            Trainer.AfterModelWritten = null;
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void A_save_that_fails_on_rank_0_fails_on_every_rank_with_its_reason()
    {
        string dir = NewRoot();
        try
        {
            File.WriteAllText(Path.Combine(dir, "file"), "not a folder");
            string root = Path.Combine(dir, "file", "checkpoints");
            var errors = LocalGroup.TryRun(2, ctx =>
            {
                using var current = Hosting.TrainerContextScope.Enter(ctx);
                using var model = LlamaModel.Create(Config);
                using var trainer = NewTrainer(ctx, model);
                trainer.SaveCheckpoint(root);
            });
            Assert.Contains(root, Assert.IsType<IOException>(errors[0]).Message);
            var onRank1 = Assert.IsType<IOException>(errors[1]).Message;
            Assert.Contains("rank 0 could not write the checkpoint", onRank1);
            Assert.Contains(root, onRank1);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void A_resume_that_fails_on_rank_0_fails_on_every_rank_at_once()
    {
        string root = NewRoot();
        try
        {
            File.WriteAllText(Path.Combine(root, "latest"), "../elsewhere");
            var errors = LocalGroup.TryRun(2, ctx =>
            {
                using var current = Hosting.TrainerContextScope.Enter(ctx);
                using var model = LlamaModel.Create(Config);
                using var trainer = NewTrainer(ctx, model);
                trainer.Resume(root);
            }, collectiveTimeout: TimeSpan.FromSeconds(30));
            Assert.Contains("../elsewhere", Assert.IsType<InvalidDataException>(errors[0]).Message);
            var onRank1 = Assert.IsType<InvalidDataException>(errors[1]).Message;
            Assert.Contains("rank 0 could not choose a checkpoint", onRank1);
            Assert.Contains("../elsewhere", onRank1);
        }
        finally { Directory.Delete(root, recursive: true); }
    }

    [Fact]
    public void Resume_at_world_size_2_skips_an_incomplete_newest_checkpoint_on_every_rank()
    {
        string root = NewRoot();
        try
        {
            var expectedLosses = new double[2][];
            DisposeScopeTests.OnRanks(2, ctx =>
            {
                using var model = LlamaModel.Create(Config);
                using var trainer = NewTrainer(ctx, model);
                trainer.Step();
                trainer.Step();
                trainer.SaveCheckpoint(root);
                expectedLosses[ctx.Rank] = [trainer.Step().Loss, trainer.Step().Loss];
                trainer.SaveCheckpoint(root);
            });
            // The newest checkpoint loses its optimizer state (a half-copied folder, a disk that lost the tail).
            string newest = Path.Combine(root, "step-00000004");
            Assert.Equal(newest, Trainer.LatestCheckpoint(root));
            using (var f = File.Open(Path.Combine(newest, "optimizer.bin"), FileMode.Open)) f.SetLength(f.Length / 2);

            var resumed = new double[2][];
            var steps = new int[2];
            DisposeScopeTests.OnRanks(2, ctx =>
            {
                using var model = LlamaModel.Create(Config, seed: 5);
                using var trainer = NewTrainer(ctx, model);
                Assert.True(trainer.Resume(root));
                steps[ctx.Rank] = trainer.StepCount;
                resumed[ctx.Rank] = [trainer.Step().Loss, trainer.Step().Loss];
            });
            Assert.Equal([2, 2], steps);
            Assert.Equal(expectedLosses, resumed);
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}
