using System.ComponentModel.DataAnnotations;
using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using VectorLm;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Reinforcement;
using VectorLm.Sampling;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Samples;

/// <summary>
/// Teaches a tiny Llama additions by reward (GRPO). A short supervised warm start (or a model saved by
/// <c>samples/FineTune --save-to</c>) teaches the answer format; then, each step, the hot-swapped llama.cpp engine samples
/// a group of answers per prompt at temperature 1, each answer is scored (1 for the exact sum, a little for a
/// well-formed number), and the clipped policy loss pushes up the answers that beat their group. Greedy accuracy on the
/// additions held out of the warm start, which only rewards can teach, is measured before the first GRPO step and every
/// <c>--eval-every</c> steps.
/// </summary>
[DistributedTrainer]
public partial class ArithmeticGrpo
{
    /// <summary>GRPO steps (one rollout and one optimizer step each).</summary>
    [Option, Range(1, 1_000_000)] public int Steps { get; init; } = 400;

    /// <summary>Completions sampled per prompt (TRL num_generations).</summary>
    [Option, Range(2, 1024)] public int GroupSize { get; init; } = 16;

    /// <summary>Prompts per rollout, all ranks together (a multiple of the world size).</summary>
    [Option, Range(1, 4096)] public int PromptsPerStep { get; init; } = 32;

    /// <summary>Weight of the KL penalty to the warm-started model (0: no reference model is kept).</summary>
    [Option, Range(0.0, double.MaxValue)] public double Beta { get; init; }

    /// <summary>Clip range of the policy ratio.</summary>
    [Option, Range(0.0, 1.0, MinimumIsExclusive = true)] public double Epsilon { get; init; } = 0.2;

    /// <summary>Policy updates per rollout (TRL num_iterations); above 1 the clip range matters.</summary>
    [Option, Range(1, 100)] public int Iterations { get; init; } = 1;

    /// <summary>How per-token losses are aggregated.</summary>
    [Option] public PolicyLossType LossType { get; init; } = PolicyLossType.Dapo;

    /// <summary>How group advantages are scaled.</summary>
    [Option] public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;

    /// <summary>Learning rate of the GRPO phase.</summary>
    [Option, Range(0.0, 1.0, MinimumIsExclusive = true)] public double LearningRate { get; init; } = 2e-3;

    /// <summary>Supervised steps before GRPO (ignored with --init-from); few enough to leave room to learn.</summary>
    [Option, Range(0, 1_000_000)] public int WarmStartSteps { get; init; } = 150;

    /// <summary>Start from this model folder (config.json + model.safetensors, e.g. from FineTune --save-to) instead of a warm start.</summary>
    [Option, MustExist] public string InitFrom { get; init; } = "";

    /// <summary>A Hugging Face folder (config.json, safetensors, tokenizer.json) to train with its own tokenizer; empty: the tiny model.</summary>
    [Option, MustExist] public string Model { get; init; } = "";

    /// <summary>LoRA rank on every projection (alpha = 2 x rank); 0: full fine-tuning.</summary>
    [Option, Range(0, 4096)] public int LoraRank { get; init; }

    /// <summary>config.json of a fresh model of another shape (e.g. for a GPU throughput run); empty: the tiny model.</summary>
    [Option, MustExist] public string ModelConfig { get; init; } = "";

    /// <summary>Largest operand of the additions (at most 499: an answer gets 4 tokens with its end).</summary>
    [Option, Range(1, 499)] public int MaxOperand { get; init; } = 9;

    /// <summary>Additions held out of the warm start and scored greedily (GRPO samples them like the others).</summary>
    [Option, Range(1, 10_000)] public int EvalPrompts { get; init; } = 40;

    /// <summary>Evaluate every this many GRPO steps (and after the last).</summary>
    [Option, Range(1, int.MaxValue)] public int EvalEvery { get; init; } = 40;

    /// <summary>Seed of the prompt order and of the engine's sampling streams (the same on every rank).</summary>
    [Option] public int DataSeed { get; init; } = 7;

    /// <summary>JSONL of per-step metrics (rank 0); empty for none.</summary>
    [Option] public string MetricsFile { get; init; } = "";

    /// <summary>PNG of reward, loss, accuracy and log-prob mismatch, rewritten at each evaluation (rank 0); empty for none.</summary>
    [Option] public string PlotFile { get; init; } = "";

    /// <summary>JSONL of sampled completions with rewards (rank 0); empty for none.</summary>
    [Option] public string CompletionsFile { get; init; } = "";

    /// <summary>Log the rollout's completions every this many steps.</summary>
    [Option, Range(1, int.MaxValue)] public int LogCompletionsEvery { get; init; } = 10;

    const int MaxNewTokens = 4;

    public void Train(TrainerContext ctx)
    {
        var tokenizer = Model.Length > 0 ? Tokenizer.FromPretrained(Model) : Tokenizer.ByteLevel();
        // The warm start sees some additions; the others are held out of it and scored greedily. GRPO samples from
        // all of them: the held-out ones can only be learned from rewards.
        var (supervised, heldOut) = SplitAdditions(MaxOperand, EvalPrompts);
        var all = supervised.Concat(heldOut).ToList();
        var evalPrompts = heldOut.Select(e => e.Prompt).ToList();
        var answers = all.ToDictionary(e => e.Prompt, e => e.Completion);

        using var model = Model.Length > 0 ? LlamaModel.FromPretrained(Model, ctx.Device)
            : InitFrom.Length > 0 ? LlamaModel.FromPretrained(InitFrom, ctx.Device)
            : LlamaModel.Create(ModelConfig.Length > 0 ? LlamaConfig.Load(ModelConfig) : LlamaConfig.Tiny, ctx.Device, seed: 0);
        if (LoraRank > 0) model.AddLora(new LoraConfig { R = LoraRank, Alpha = 2 * LoraRank }); // before the sampler and optimizer
        // Slots for this rank's share of a rollout (its prompts times the group, at most the default 32). Auto picks the
        // torch engine on CUDA; on the CPU the torch engine from SamplerExtensions.CpuTorchMinSequences slots, llama.cpp below.
        var engineOptions = new EngineOptions { MaxSequences = Math.Min(32, (PromptsPerStep + ctx.WorldSize - 1) / ctx.WorldSize * GroupSize) };
        using var sampler = ctx.CreateSampler(model, tokenizer, engineOptions);
        if (ctx.IsMainRank) Console.WriteLine($"sampling backend: {sampler.GetType().Name}, {sampler.WeightType} weights, {engineOptions.MaxSequences} slots, on {ctx.Device}");
        if (InitFrom.Length == 0) WarmStart(ctx, model, tokenizer, supervised);

        // The reference model is the warm start, frozen; with Beta 0 none is kept (as in TRL).
        using var reference = Beta > 0 ? Copy(model, ctx.Device) : null;
        var optimizer = Optimizers.AdamW(model, LearningRate, weightDecay: 0.0);
        var lossOptions = new PolicyLossOptions
        {
            LossType = LossType, Epsilon = Epsilon, Beta = Beta, MaxCompletionLength = MaxNewTokens,
        };
        var rewards = new RewardSet()
            .Add("correct", (prompt, completion, _, _) => completion == answers[prompt] ? 1f : 0f)
            .Add("format", (_, completion, ids, _) => IsNumber(completion) && ids.Count > 0 && ids[^1] == tokenizer.EosId ? 1f : 0f, weight: 0.1f);

        using var metrics = ctx.IsMainRank && MetricsFile.Length > 0 ? new MetricsWriter(MetricsFile) : null;
        using var completionsLog = ctx.IsMainRank && CompletionsFile.Length > 0 ? new CompletionsLog(CompletionsFile) : null;
        var history = new MetricsHistory();
        using var progress = new ProgressReporter("grpo", Steps, ctx.IsMainRank);

        double accuracy = Evaluate(sampler, evalPrompts, answers);
        progress.WriteLine($"step    0  held-out accuracy {accuracy:P0} ({evalPrompts.Count} additions, greedy)");
        RecordEval(metrics, history, 0, accuracy);

        var shuffle = new Random(DataSeed); // the same prompts on every rank
        for (int step = 1; step <= Steps; step++)
        {
            var prompts = Enumerable.Range(0, PromptsPerStep).Select(_ => all[shuffle.Next(all.Count)].Prompt).ToList();
            var clock = Stopwatch.StartNew();
            sampler.SyncWeights(); // the swap, timed on its own (Generate would do it otherwise)
            double swapSeconds = clock.Elapsed.TotalSeconds;
            var completions = sampler.Generate(prompts, new SamplingParams
            {
                Temperature = 1, MaxNewTokens = MaxNewTokens, N = GroupSize, Seed = (ulong)DataSeed * 1_000_003 + (ulong)step,
            });
            double generationSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();

            var scores = rewards.Score(prompts, completions);
            var advantages = Advantages.GroupNormalized(scores.Total, GroupSize, ScaleRewards);
            using var rollout = Rollout.Create(prompts, completions, sampler.TokenizePrompt, advantages, ctx.Rank, ctx.WorldSize, ctx.Device);
            var statistics = Update(ctx, model, reference, optimizer, rollout, lossOptions);

            var stepMetrics = GrpoMetrics.FromRollout(completions, scores, GroupSize) with
            {
                Policy = statistics, GenerationSeconds = generationSeconds, SwapSeconds = swapSeconds, TrainSeconds = clock.Elapsed.TotalSeconds,
            };
            var values = stepMetrics.ToPairs(step).ToList();
            bool evaluate = step % EvalEvery == 0 || step == Steps;
            if (evaluate)
            {
                accuracy = Evaluate(sampler, evalPrompts, answers);
                values.Add(new("eval_accuracy", accuracy));
            }
            metrics?.Write(values);
            history.Add(step, values);
            if (step % LogCompletionsEvery == 0) completionsLog?.Write(step, prompts, completions, scores, advantages);
            progress.Update(step, rollout.TotalCompletionTokens, [new("reward", stepMetrics.RewardMean), new("loss", statistics.Loss)]);
            if (evaluate)
            {
                progress.WriteLine($"step {step,4}  held-out accuracy {accuracy:P0}  reward {stepMetrics.RewardMean:F3}  " +
                    $"mismatch {statistics.LogProbMismatch:F4}  engine weights v{stepMetrics.WeightVersion}");
                if (ctx.IsMainRank && PlotFile.Length > 0) MetricsPlot.Save(PlotFile, history, PlotNames);
            }
        }
    }

    static readonly string[] PlotNames = ["reward_mean", "loss", "eval_accuracy", "logprob_mismatch"];

    /// <summary>One or more policy updates on the rollout; returns the statistics of the last, averaged over ranks.</summary>
    PolicyStatistics Update(TrainerContext ctx, LlamaModel model, LlamaModel? reference, optim.Optimizer optimizer, Rollout rollout, PolicyLossOptions options)
    {
        using var scope = NewDisposeScope();
        Tensor? old = null, referenceLogProbs = null;
        using (no_grad())
        {
            // With one update per rollout the current log-probs are the old ones (ratio 1); with more, fix them first.
            if (Iterations > 1) old = PolicyLogProbs.Compute(model, rollout).LogProbs;
            if (reference is not null) referenceLogProbs = PolicyLogProbs.Compute(reference, rollout).LogProbs;
        }
        PolicyStatistics statistics = default;
        for (int i = 0; i < Iterations; i++)
        {
            using var iteration = NewDisposeScope();
            optimizer.zero_grad();
            var policy = PolicyLogProbs.Compute(model, rollout);
            var result = PolicyLoss.Compute(rollout, policy, options, old, referenceLogProbs);
            result.Loss.backward();
            nn.utils.clip_grad_norm_(model.parameters(), 1.0); // intercepted: averages over ranks first, as DDP
            optimizer.step();
            statistics = PolicyStatistics.FromTensor(ctx.AllReduce(result.Statistics, ReduceOp.Avg));
        }
        return statistics;
    }

    void WarmStart(TrainerContext ctx, LlamaModel model, Tokenizer tokenizer, IReadOnlyList<PromptCompletion> train)
    {
        var examples = Enumerable.Repeat(train, 50).SelectMany(t => t).ToList();
        var dataset = PackedDataset.FromExamples(examples, tokenizer, sequenceLength: 16);
        var loader = new ShardedDataLoader(dataset, batchSize: 16, seed: 1, ctx.Rank, ctx.WorldSize, device: ctx.Device);
        var optimizer = Optimizers.AdamW(model, 3e-3);
        using var progress = new ProgressReporter("warm start", Math.Max(1, WarmStartSteps), ctx.IsMainRank);
        for (int step = 1; step <= WarmStartSteps; step++)
        {
            using var scope = NewDisposeScope();
            using var batch = loader.Next();
            optimizer.zero_grad();
            var loss = model.Loss(batch.InputIds, batch.Labels);
            loss.backward();
            nn.utils.clip_grad_norm_(model.parameters(), 1.0);
            optimizer.step();
            double meanLoss = ctx.AllReduce(loss.detach().clone(), ReduceOp.Avg).item<float>();
            progress.Update(step, batch.TokenCount * ctx.WorldSize, [new("loss", meanLoss)]);
        }
    }

    static double Evaluate(ISamplingEngine sampler, IReadOnlyList<string> prompts, IReadOnlyDictionary<string, string> answers)
    {
        var completions = sampler.Generate(prompts, SamplingParams.Greedy(MaxNewTokens));
        return completions.Count(c => c.Samples[0].Text == answers[prompts[c.PromptIndex]]) / (double)prompts.Count;
    }

    static void RecordEval(MetricsWriter? metrics, MetricsHistory history, int step, double accuracy)
    {
        KeyValuePair<string, double>[] values = [new("step", step), new("eval_accuracy", accuracy)];
        metrics?.Write(values);
        history.Add(step, values);
    }

    static bool IsNumber(string text) => text.Length > 0 && text.All(char.IsAsciiDigit);

    /// <summary>Every addition of operands in [0, maxOperand], shuffled once; the first <paramref name="held"/> are held out.</summary>
    static (List<PromptCompletion> Train, List<PromptCompletion> Eval) SplitAdditions(int maxOperand, int held)
    {
        var all = (from a in Enumerable.Range(0, maxOperand + 1)
                   from b in Enumerable.Range(0, maxOperand + 1)
                   select new PromptCompletion(string.Create(CultureInfo.InvariantCulture, $"{a}+{b}="),
                       (a + b).ToString(CultureInfo.InvariantCulture))).ToList();
        if (held < 1 || held >= all.Count)
            throw new ArgumentException($"--eval-prompts must be in [1, {all.Count - 1}] for --max-operand {maxOperand}, got {held}");
        var rng = new Random(12345);
        var shuffled = all.OrderBy(_ => rng.Next()).ToList();
        return (shuffled.Skip(held).ToList(), shuffled.Take(held).ToList());
    }

    static LlamaModel Copy(LlamaModel model, Device device)
    {
        var copy = LlamaModel.Create(model.Config, device);
        using (no_grad())
        {
            var source = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in copy.named_parameters())
            {
                p.copy_(source[name]);
                p.requires_grad = false;
            }
        }
        copy.eval();
        return copy;
    }
}
