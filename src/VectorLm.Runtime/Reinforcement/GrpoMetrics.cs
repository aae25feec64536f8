using VectorLm.Sampling;

namespace VectorLm.Reinforcement;

/// <summary>
/// What one GRPO step did, under the names TRL logs (without its prefixes): <c>reward_mean</c>, <c>reward_std</c>,
/// <c>frac_reward_zero_std</c>, <c>reward/NAME</c> per reward, <c>completion_length</c>, <c>clip_ratio</c>, <c>kl</c>,
/// <c>entropy</c>, <c>logprob_mismatch</c>, <c>generation_seconds</c> (of which <c>swap_seconds</c>), <c>train_seconds</c>, <c>weight_version</c>,
/// plus <c>loss</c> and <c>importance_ratio</c>.
/// </summary>
public sealed record GrpoMetrics
{
    /// <summary>Mean total reward of the rollout.</summary>
    public double RewardMean { get; init; }
    /// <summary>Standard deviation of the total reward over the rollout.</summary>
    public double RewardStd { get; init; }
    /// <summary>Fraction of groups whose rewards all equal (no signal).</summary>
    public double FracRewardZeroStd { get; init; }
    /// <summary>Mean of each reward over the completions it applied to.</summary>
    public IReadOnlyDictionary<string, double> RewardMeans { get; init; } = new Dictionary<string, double>();
    /// <summary>Mean completion length in tokens.</summary>
    public double CompletionLength { get; init; }
    /// <summary>The policy loss statistics (averaged over ranks).</summary>
    public PolicyStatistics Policy { get; init; }
    /// <summary>Wall time of generation (weight sync included).</summary>
    public double GenerationSeconds { get; init; }
    /// <summary>Part of <see cref="GenerationSeconds"/> spent copying the trained weights into the engine; NaN when not measured.</summary>
    public double SwapSeconds { get; init; } = double.NaN;
    /// <summary>Wall time of scoring, the forward/backward passes and the optimizer step.</summary>
    public double TrainSeconds { get; init; }
    /// <summary>Engine weight version that sampled the rollout.</summary>
    public long WeightVersion { get; init; }

    /// <summary>The rollout part of the metrics (the same on every rank: every rank sees the whole rollout).</summary>
    public static GrpoMetrics FromRollout(IReadOnlyList<Completion> completions, RewardScores scores, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(completions);
        ArgumentNullException.ThrowIfNull(scores);
        var samples = completions.SelectMany(c => c.Samples).ToList();
        return new GrpoMetrics
        {
            RewardMean = scores.Total.Average(v => (double)v),
            RewardStd = Advantages.Std(scores.Total, 0, scores.Total.Length),
            FracRewardZeroStd = Advantages.FractionZeroStd(scores.Total, groupSize),
            RewardMeans = scores.PerReward.Keys.ToDictionary(k => k, scores.Mean, StringComparer.Ordinal),
            CompletionLength = samples.Count == 0 ? 0 : samples.Average(s => (double)s.TokenIds.Count),
            WeightVersion = samples.Count == 0 ? 0 : samples.Max(s => s.WeightVersion),
        };
    }

    /// <summary>The metrics as (name, value) pairs in a fixed order, <c>step</c> first (for a JSONL line or a plot).</summary>
    public IEnumerable<KeyValuePair<string, double>> ToPairs(int step)
    {
        yield return new("step", step);
        yield return new("loss", Policy.Loss);
        yield return new("reward_mean", RewardMean);
        yield return new("reward_std", RewardStd);
        yield return new("frac_reward_zero_std", FracRewardZeroStd);
        foreach (var (name, mean) in RewardMeans) yield return new("reward/" + name, mean);
        yield return new("completion_length", CompletionLength);
        yield return new("clip_ratio", Policy.ClipRatio);
        yield return new("kl", Policy.Kl);
        yield return new("entropy", Policy.Entropy);
        yield return new("logprob_mismatch", Policy.LogProbMismatch);
        yield return new("importance_ratio", Policy.ImportanceRatio);
        yield return new("generation_seconds", GenerationSeconds);
        yield return new("swap_seconds", SwapSeconds);
        yield return new("train_seconds", TrainSeconds);
        yield return new("weight_version", WeightVersion);
    }
}
