using TorchSharp;
using VectorLm.Data;
using VectorLm.Hosting;
using VectorLm.Hosting.CommandLine;
using VectorLm.Models;
using VectorLm.Native;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

public class PrecisionTests
{
    static readonly Tokenizer Tok = Tokenizer.ByteLevel();
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 };

    static ShardedDataLoader Data() =>
        new(PackedDataset.FromExamples(ArithmeticTask.Generate(400, seed: 1, maxOperand: 49), Tok, 32), batchSize: 8, seed: 0);

    [Theory]
    [InlineData("32-true")]
    [InlineData("tf32")]
    [InlineData("bf16-mixed")]
    [InlineData("bf16-true")]
    public void Each_precision_trains_with_a_finite_falling_loss(string name)
    {
        var precision = Precision.Parse(name);
        using var use = precision.Use();
        using var model = LlamaModel.Create(Config, seed: 0);
        Assert.All(model.parameters(), p => Assert.Equal(precision.ParameterDtype, p.dtype));
        using var trainer = new Trainer(model, Data(), new TrainerOptions { LearningRate = 1e-2, WarmupSteps = 2, TotalSteps = 30 });
        var losses = Enumerable.Range(0, 30).Select(_ => trainer.Step().Loss).ToList();
        Assert.All(losses, l => Assert.True(double.IsFinite(l), $"{name}: loss {l}"));
        double first = losses.Take(3).Average(), last = losses.TakeLast(5).Average();
        Assert.True(last < 0.8 * first, $"{name}: loss went from {first:F3} to {last:F3}");
        Assert.All(model.parameters(), p => Assert.Equal(precision.ParameterDtype, p.dtype));
    }

    [Fact]
    public void Bf16_mixed_computes_in_bf16_with_f32_parameters_and_a_f32_loss()
    {
        using var use = Precision.Bf16Mixed.Use();
        using var model = LlamaModel.Create(Config, seed: 0);
        using var ids = randint(0, Config.VocabSize, [2, 16], dtype: ScalarType.Int64);
        using (var logits = model.forward(ids)) Assert.Equal(ScalarType.BFloat16, logits.dtype);
        using (var loss = model.Loss(ids, ids)) Assert.Equal(ScalarType.Float32, loss.dtype);
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        // The region ends with the forward: ops the caller runs afterwards are not autocast.
        Assert.False(LibTorchAutocast.IsEnabled(DeviceType.CPU));
        using var a = ones(4, 4);
        using var product = a.matmul(a);
        Assert.Equal(ScalarType.Float32, product.dtype);
    }

    [Fact]
    public void Bf16_mixed_keeps_updates_that_bf16_weights_lose()
    {
        // AdamW moves each weight by about the learning rate; 1e-4 is far below bf16's spacing at 1.0 (2^-7), the
        // value of every norm weight at initialisation.
        float Step(Precision precision)
        {
            using var use = precision.Use();
            using var model = LlamaModel.Create(Config, seed: 0);
            using var trainer = new Trainer(model, Data(), new TrainerOptions
            {
                LearningRate = 1e-4, MinLearningRate = 1e-4, WarmupSteps = 0, TotalSteps = 10, WeightDecay = 0, GradClip = 0,
            });
            trainer.Step();
            var norm = model.named_parameters().First(p => p.name == "model.norm.weight").parameter;
            using var moved = (norm.to(ScalarType.Float32) - 1).abs().max();
            return moved.item<float>();
        }
        float mixed = Step(Precision.Bf16Mixed), pure = Step(Precision.Bf16True);
        Assert.InRange(mixed, 5e-5f, 2e-4f);
        Assert.Equal(0f, pure);
    }

    [Fact]
    public void Autocast_sees_weights_changed_between_forwards()
    {
        // libtorch caches low-precision copies of weights inside an autocast region; each forward must start afresh.
        using var use = Precision.Bf16Mixed.Use();
        using var model = LlamaModel.Create(Config, seed: 0);
        using var ids = randint(0, Config.VocabSize, [1, 8], dtype: ScalarType.Int64);
        using var before = model.forward(ids).detach();
        using (no_grad())
            foreach (var p in model.parameters().Where(p => p.dim() == 2)) p.mul_(2);
        using var after = model.forward(ids).detach();
        Assert.False(before.allclose(after));
    }

    [Fact]
    public void Parse_accepts_the_lightning_names_and_rejects_others_by_name()
    {
        Assert.Same(Precision.Bf16Mixed, Precision.Parse("BF16-Mixed"));
        Assert.Equal(["32-true", "tf32", "bf16-mixed", "bf16-true"], Precision.All.Select(p => p.Name));
        var e = Assert.Throws<ArgumentException>(() => Precision.Parse("fp16"));
        Assert.Contains("'fp16'", e.Message);
        Assert.Contains("bf16-mixed", e.Message);
        Assert.Same(Precision.Bf16Mixed, Precision.DefaultFor(new Device(DeviceType.CUDA, 0)));
        Assert.Same(Precision.Full32, Precision.DefaultFor(CPU));
    }

    [Fact]
    public void Precision_is_a_launch_option_on_the_command_line_and_in_the_config_file()
    {
        var cli = new TrainerCommandLine("T", null);
        Assert.Equal("bf16-true", Launch(cli, ["--precision", "bf16-true"]).Precision);
        Assert.Null(Launch(cli, []).Precision);

        var error = Assert.Single(cli.Parse(["--precision", "fp8"]).Errors);
        Assert.Contains("--precision", error);
        Assert.Contains("'fp8'", error);

        using var dir = new TestSetup.TempDir();
        File.WriteAllText(dir["c.yaml"], "precision: tf32\n");
        Assert.Equal("tf32", Launch(cli, ["--config", dir["c.yaml"]]).Precision);
        Assert.Equal("32-true", Launch(cli, ["--config", dir["c.yaml"], "--precision", "32-true"]).Precision);
    }

    static LaunchOptions Launch(TrainerCommandLine cli, string[] args)
    {
        var parsed = cli.Parse(args);
        Assert.Empty(parsed.Errors);
        return parsed.Launch;
    }

    [Fact]
    public void The_trainer_context_carries_the_precision_to_the_model()
    {
        using var ctx = TrainerContext.SingleProcess();
        Assert.Same(Precision.Full32, ctx.Precision);
        ctx.Precision = Precision.Bf16True;
        using (TrainerContextScope.Enter(ctx))
        {
            Assert.Same(Precision.Bf16True, Precision.Current);
            using var model = LlamaModel.Create(Config, seed: 0);
            Assert.All(model.parameters(), p => Assert.Equal(ScalarType.BFloat16, p.dtype));
        }
        Assert.Same(Precision.Full32, Precision.Current);
    }
}
