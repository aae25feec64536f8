using System.Globalization;
using System.ComponentModel.DataAnnotations;
using TorchSharp;
using VectorLm;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Sampling;
using VectorLm.Tokenization;
using VectorLm.Training;

namespace VectorLm.Samples;

/// <summary>
/// Teaches a tiny Llama, made on the spot, to add numbers (single digits by default, <c>--max-operand</c> for more),
/// and samples its answers with the colocated llama.cpp engine while it trains. The loop is written for one device;
/// the generated code runs it on <c>--nproc-per-node N</c> ranks: gradients are averaged at <c>optimizer.step()</c>, and
/// <c>Generate</c> syncs the engine's weights in place and returns the same completions on every rank.
/// </summary>
[DistributedTrainer]
public partial class ArithmeticFineTune
{
    /// <summary>Optimizer steps.</summary>
    [Option, Range(1, 1_000_000)] public int Steps { get; init; } = 300;

    /// <summary>Sample and score the held-out prompts every this many steps.</summary>
    [Option, Range(1, int.MaxValue)] public int SampleEvery { get; init; } = 50;

    /// <summary>Sequences per rank per step.</summary>
    [Option, Range(1, 4096)] public int BatchSize { get; init; } = 16;

    /// <summary>Peak learning rate of the warm-up + cosine schedule.</summary>
    [Option, Range(0.0, 1.0, MinimumIsExclusive = true)] public double LearningRate { get; init; } = 3e-3;

    /// <summary>Largest operand of the additions (9: single digits, learned in a few hundred steps; 99: much harder).</summary>
    [Option, Range(1, 999)] public int MaxOperand { get; init; } = 9;

    /// <summary>Held-out prompts scored at each sampling point.</summary>
    [Option, Range(1, 10_000)] public int EvalPrompts { get; init; } = 64;

    /// <summary>A Hugging Face folder (config.json, safetensors, tokenizer.json) to fine-tune; empty: the tiny model made on the spot.</summary>
    [Option, MustExist] public string Model { get; init; } = "";

    /// <summary>LoRA rank: 0 trains every weight; above 0 trains only a rank-r adapter on all projections (alpha = 2r).</summary>
    [Option, Range(0, 4096)] public int LoraRank { get; init; }

    /// <summary>Where to write metrics as JSON lines (rank 0); empty for none.</summary>
    [Option] public string MetricsFile { get; init; } = "";

    /// <summary>PNG of loss, accuracy, gradient norm and learning rate, rewritten at each sampling point (rank 0); empty for none.</summary>
    [Option] public string PlotFile { get; init; } = "";

    /// <summary>Save the trained model here at the end (config.json + model.safetensors; rank 0), e.g. for samples/Grpo --init-from.</summary>
    [Option] public string SaveTo { get; init; } = "";

    static readonly string[] PlotNames = ["loss", "eval_accuracy", "grad_norm", "lr"];

    public void Train(TrainerContext ctx)
    {
        var tokenizer = Model.Length > 0 ? Tokenizer.FromPretrained(Model) : Tokenizer.ByteLevel();
        var dataset = PackedDataset.FromExamples(ArithmeticTask.Generate(20_000, seed: 1, MaxOperand), tokenizer, sequenceLength: 16);
        var loader = new ShardedDataLoader(dataset, BatchSize, seed: 1, ctx.Rank, ctx.WorldSize, device: ctx.Device);
        var evalPrompts = ArithmeticTask.Generate(EvalPrompts, seed: 12345, MaxOperand).Select(e => e.Prompt).ToList();

        using var model = Model.Length > 0 ? LlamaModel.FromPretrained(Model, ctx.Device) : LlamaModel.Create(LlamaConfig.Tiny, ctx.Device, seed: 0);
        if (LoraRank > 0) model.AddLora(new LoraConfig { R = LoraRank, Alpha = 2 * LoraRank }); // before the sampler and optimizer
        // Slots for this rank's share of the evaluation prompts (at most the default 32). Auto picks the torch engine on
        // CUDA; on the CPU the torch engine from SamplerExtensions.CpuTorchMinSequences slots, llama.cpp below.
        var engineOptions = new EngineOptions { MaxSequences = Math.Min(32, (EvalPrompts + ctx.WorldSize - 1) / ctx.WorldSize) };
        using var sampler = ctx.CreateSampler(model, tokenizer, engineOptions);
        if (ctx.IsMainRank) Console.WriteLine($"sampling backend: {sampler.GetType().Name}, {sampler.WeightType} weights, {engineOptions.MaxSequences} slots, on {ctx.Device}");
        var optimizer = Optimizers.AdamW(model, LearningRate);
        var schedule = new CosineSchedule(LearningRate, WarmupSteps: Steps / 20, TotalSteps: Steps, MinLearningRate: LearningRate / 10);
        using var metrics = ctx.IsMainRank && MetricsFile.Length > 0 ? new MetricsWriter(MetricsFile) : null;
        var history = new MetricsHistory();
        using var progress = new ProgressReporter("fine-tune", Steps, ctx.IsMainRank);

        var greedy = SamplingParams.Greedy(maxNewTokens: 4);
        Report(progress, 0, double.NaN, sampler.Generate(evalPrompts, greedy), evalPrompts);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int step = 1; step <= Steps; step++)
        {
            using var batch = loader.Next();
            double lr = schedule.LearningRate(step);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            optimizer.zero_grad();
            using var loss = model.Loss(batch.InputIds, batch.Labels);
            loss.backward();
            double gradNorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0); // intercepted: norm of the rank-averaged gradients
            optimizer.step();

            // Every rank reports the mean loss over ranks, so the line is the same wherever it is printed.
            using var lossOnRanks = loss.detach().clone();
            double meanLoss = ctx.AllReduce(lossOnRanks, ReduceOp.Avg).item<float>();
            long tokens = batch.TokenCount * ctx.WorldSize;
            var values = new List<KeyValuePair<string, double>>
            {
                new("step", step), new("loss", meanLoss), new("lr", lr), new("grad_norm", gradNorm),
                new("tokens_per_s", tokens / clock.Elapsed.TotalSeconds), new("seconds", clock.Elapsed.TotalSeconds),
            };
            clock.Restart();
            progress.Update(step, tokens, [new("loss", meanLoss), new("grad_norm", gradNorm)]);

            if (step % SampleEvery == 0 || step == Steps)
            {
                double accuracy = Report(progress, step, meanLoss, sampler.Generate(evalPrompts, greedy), evalPrompts);
                values.Add(new("eval_accuracy", accuracy));
                history.Add(step, values);
                if (ctx.IsMainRank && PlotFile.Length > 0) MetricsPlot.Save(PlotFile, history, PlotNames);
            }
            else history.Add(step, values);
            metrics?.Write(values);
        }
        if (ctx.IsMainRank && SaveTo.Length > 0)
        {
            model.SaveTo(SaveTo);
            progress.WriteLine($"saved the model to {SaveTo}");
        }
    }

    static double Report(ProgressReporter progress, int step, double loss, IReadOnlyList<Completion> completions, IReadOnlyList<string> prompts)
    {
        int correct = completions.Count(c => ArithmeticTask.IsCorrect(prompts[c.PromptIndex], c.Samples[0].Text));
        var first = completions[1 % completions.Count].Samples[0];
        // Before the first step there is no loss yet: a dash, not NaN.
        string lossText = double.IsNaN(loss) ? "     -" : loss.ToString("F3", CultureInfo.InvariantCulture).PadLeft(6);
        progress.WriteLine($"step {step,4}  loss {lossText}  accuracy {correct,3}/{prompts.Count}  " +
            $"e.g. {prompts[1 % prompts.Count]}{first.Text.Trim()}  (engine weights v{first.WeightVersion})");
        return correct / (double)prompts.Count;
    }
}
