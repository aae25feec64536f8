using VectorLm.Data;
using VectorLm.Hosting;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;

namespace VectorLm.Sampling.Tests;

/// <summary>Under bf16-mixed the engine follows the float32 master weights, not a bfloat16 copy.</summary>
public class PrecisionSamplerTests
{
    [Fact]
    public void Under_bf16_mixed_the_sampler_reads_the_f32_masters()
    {
        var tokenizer = Tokenizer.ByteLevel();
        var config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 };
        using var ctx = TrainerContext.SingleProcess();
        ctx.Precision = Precision.Bf16Mixed;
        using var scope = TrainerContextScope.Enter(ctx);
        using var model = LlamaModel.Create(config, seed: 6);
        // A bfloat16 copy of the weights would miss this tolerance by two orders of magnitude.
        var options = new EngineOptions { Backend = SamplingBackend.LlamaCpp, ContextLength = 32, MaxSequences = 2, BatchTokens = 32, Threads = 1, WeightType = EngineWeightType.F32, ParityTolerance = 1e-4f };
        using var engine = (LlamaSamplingEngine)ctx.CreateSampler(model, tokenizer, options);   // the parity gate runs here
        int[] probe = engine.TokenizePrompt("12+34=");
        var before = engine.EvaluateLogits(probe);

        // One AdamW step of ~1e-4 per weight: below bfloat16's resolution, so only float32 masters see it.
        var data = new ShardedDataLoader(PackedDataset.FromExamples(ArithmeticTask.Generate(64, seed: 2, maxOperand: 49), tokenizer, 32), 4, seed: 0);
        using var trainer = new Trainer(model, data, new TrainerOptions { LearningRate = 1e-4, MinLearningRate = 1e-4, WarmupSteps = 0, GradClip = 0 });
        trainer.Step();
        Assert.True(engine.IsStale);
        engine.SyncWeights();
        var report = engine.CheckParity();
        Assert.True(report.Relative <= 1e-4f, report.ToString());
        Assert.NotEqual(before, engine.EvaluateLogits(probe));
        Assert.All(model.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.Float32, p.dtype));
    }
}
