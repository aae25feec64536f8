using System.Text.Json.Nodes;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;

namespace VectorLm.Runtime.Tests;

public class TrainingTests
{
    [Fact]
    public void Loss_falls_on_the_arithmetic_task()
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny, seed: 0);
        var examples = PackedDataset.FromExamples(ArithmeticTask.Generate(3000, seed: 1, maxOperand: 49), Tokenizer.ByteLevel(), 64);
        var data = new ShardedDataLoader(examples, batchSize: 16, seed: 0);
        using var trainer = new Trainer(model, data, new TrainerOptions { LearningRate = 1e-2, MinLearningRate = 1e-3, WarmupSteps = 10, TotalSteps = 120 });
        var losses = Enumerable.Range(0, 120).Select(_ => trainer.Step().Loss).ToList();
        double first = losses.Take(5).Average(), last = losses.TakeLast(10).Average();
        Assert.True(last < 0.45 * first, $"loss went from {first:F3} to {last:F3}");
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
    }

    [Fact]
    public void Resume_gives_the_same_losses_as_an_uninterrupted_run()
    {
        // Weights, optimizer state, schedule and data position; the RNG restore has its own test (ResumeRngTests):
        // this training draws nothing from torch's generator.
        using var dir = new TestSetup.TempDir();
        List<double> uninterrupted, resumed;
        using (var run = new TinyRun())
            uninterrupted = Enumerable.Range(0, 8).Select(_ => run.Trainer.Step().Loss).ToList();

        using (var run = new TinyRun())
        {
            resumed = Enumerable.Range(0, 3).Select(_ => run.Trainer.Step().Loss).ToList();
            run.Trainer.SaveCheckpoint(dir.Path);
            run.Trainer.Step(); run.Trainer.Step(); // progress that the resumed run must not see
        }

        using (var run = new TinyRun(modelSeed: 77)) // different initial weights: resume must overwrite them
        {
            Assert.True(run.Trainer.Resume(dir.Path));
            Assert.Equal(3, run.Trainer.StepCount);
            resumed.AddRange(Enumerable.Range(0, 5).Select(_ => run.Trainer.Step().Loss));
        }

        Assert.Equal(uninterrupted, resumed); // exact: one thread, same reduction order
    }

    [Fact]
    public void Resume_without_a_checkpoint_changes_nothing()
    {
        using var dir = new TestSetup.TempDir();
        using var run = new TinyRun();
        Assert.False(run.Trainer.Resume(dir.Path));
        Assert.Equal(0, run.Trainer.StepCount);
    }

    [Fact]
    public void Failure_mid_save_keeps_the_previous_checkpoint()
    {
        using var dir = new TestSetup.TempDir();
        using var run = new TinyRun();
        var t = run.Trainer;
        t.Step();
        string first = t.SaveCheckpoint(dir.Path);
        t.Step();
        // Only this test's saves: other test classes save checkpoints in parallel.
        Trainer.AfterModelWritten = tmp => { if (tmp.StartsWith(dir.Path, StringComparison.Ordinal)) throw new IOException("disk full (simulated)"); };
        try
        {
            var ex = Assert.Throws<IOException>(() => t.SaveCheckpoint(dir.Path));
            Assert.Contains("disk full", ex.Message);
        }
        finally { Trainer.AfterModelWritten = null; }
        Assert.Equal(first, Trainer.LatestCheckpoint(dir.Path));
        Assert.True(File.Exists(Path.Combine(first, "model.safetensors")));
        Assert.Empty(Directory.GetDirectories(dir.Path, "*.tmp"));
        Assert.True(t.Resume(dir.Path));
        Assert.Equal(1, t.StepCount);
    }

    [Fact]
    public void Unwritable_checkpoint_folder_is_a_clear_error()
    {
        using var dir = new TestSetup.TempDir();
        File.WriteAllText(dir["file"], "not a folder");
        string root = Path.Combine(dir["file"], "checkpoints");
        using var run = new TinyRun();
        var ex = Assert.Throws<IOException>(() => run.Trainer.SaveCheckpoint(root));
        Assert.Contains(root, ex.Message);
        Assert.Equal("not a folder", File.ReadAllText(dir["file"]));
    }

    [Fact]
    public void Old_checkpoints_are_pruned_after_a_successful_save()
    {
        using var dir = new TestSetup.TempDir();
        using var run = new TinyRun();
        var t = run.Trainer;
        for (int i = 0; i < 3; i++) { t.Step(); t.SaveCheckpoint(dir.Path); }
        t.SaveCheckpoint(dir.Path); // the same step again replaces it
        Assert.Equal(["step-00000002", "step-00000003"], Directory.GetDirectories(dir.Path).Select(Path.GetFileName).Order());
        Assert.Equal(Path.Combine(dir.Path, "step-00000003"), Trainer.LatestCheckpoint(dir.Path));
    }

    [Fact]
    public void Schedule_warms_up_linearly_then_decays_by_cosine()
    {
        var s = new CosineSchedule(1.0, 4, 14, 0.1);
        Assert.Equal([0.25, 0.5, 0.75, 1.0], Enumerable.Range(0, 4).Select(s.LearningRate));
        Assert.Equal(1.0, s.LearningRate(4), 12);
        Assert.Equal(0.55, s.LearningRate(9), 12); // halfway: min + (peak - min) / 2
        Assert.Equal(0.1, s.LearningRate(14), 12);
        Assert.Equal(0.1, s.LearningRate(100), 12);
    }

    [Fact]
    public void Norms_and_one_dimensional_parameters_get_no_weight_decay()
    {
        using var model = LlamaModel.Create(LlamaConfig.Tiny);
        var decayed = model.named_parameters().Where(p => Optimizers.Decays(p.name, p.parameter)).Select(p => p.name).ToList();
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", decayed);
        Assert.Contains("model.embed_tokens.weight", decayed);
        Assert.DoesNotContain(decayed, n => n.Contains("norm"));
        using var opt = Optimizers.AdamW(model, 1e-3, weightDecay: 0.1);
        Assert.Equal(2, opt.ParamGroups.Count());
    }

    [Fact]
    public void Metrics_are_written_as_jsonl()
    {
        using var dir = new TestSetup.TempDir();
        using (var run = new TinyRun())
        using (var metrics = new MetricsWriter(dir["metrics.jsonl"]))
            for (int i = 0; i < 3; i++) metrics.Write(run.Trainer.Step());
        var lines = File.ReadAllLines(dir["metrics.jsonl"]).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal([1, 2, 3], lines.Select(l => l["step"]!.GetValue<int>()));
        Assert.All(lines, l =>
        {
            Assert.True(l["loss"]!.GetValue<double>() > 0);
            Assert.True(l["lr"]!.GetValue<double>() > 0);
            Assert.True(l["tokens_per_s"]!.GetValue<double>() > 0);
            Assert.True(l["grad_norm"]!.GetValue<double>() > 0);
        });
    }
}
