namespace VectorLm.Reinforcement;

/// <summary>How per-token losses become one number (TRL's <c>loss_type</c>).</summary>
public enum PolicyLossType
{
    /// <summary>Sequence level: mean over each completion's tokens, then over completions (GRPO; favours short wrong answers).</summary>
    Grpo,
    /// <summary>Token level: sum over all completion tokens divided by the rollout's completion tokens (DAPO; TRL's default).</summary>
    Dapo,
    /// <summary>Token level: sum divided by rows x <see cref="PolicyLossOptions.MaxCompletionLength"/>, a constant (Dr. GRPO).</summary>
    DrGrpo,
}

/// <summary>
/// Correction for the difference between the engine that sampled (llama.cpp, f16 weights) and the trainer: each
/// token's loss is weighted by trainer/engine probability of the sampled token, capped (TRL's
/// <c>vllm_importance_sampling_mode</c>).
/// </summary>
public enum ImportanceSamplingMode
{
    /// <summary>No correction.</summary>
    None,
    /// <summary>Per-token ratio, clipped from above at the cap (truncated IS).</summary>
    TokenTruncate,
    /// <summary>Per-token ratio; tokens whose ratio exceeds the cap get weight 0.</summary>
    TokenMask,
    /// <summary>One ratio per completion (product of its tokens' ratios), clipped at the cap.</summary>
    SequenceTruncate,
    /// <summary>One ratio per completion; completions whose ratio exceeds the cap get weight 0.</summary>
    SequenceMask,
}

/// <summary>Settings of <see cref="PolicyLoss"/>. Names follow TRL's <c>GRPOConfig</c> (see the README's table).</summary>
public sealed record PolicyLossOptions
{
    /// <summary>Aggregation of per-token losses.</summary>
    public PolicyLossType LossType { get; init; } = PolicyLossType.Dapo;

    /// <summary>Lower clip range: the ratio is clipped at 1 - Epsilon (TRL <c>epsilon</c>).</summary>
    public double Epsilon { get; init; } = 0.2;

    /// <summary>Upper clip range, 1 + EpsilonHigh; null: same as <see cref="Epsilon"/> (TRL <c>epsilon_high</c>; DAPO uses 0.28).</summary>
    public double? EpsilonHigh { get; init; }

    /// <summary>Weight of the k3 KL estimate to a reference model; 0 (default) needs no reference model (TRL <c>beta</c>).</summary>
    public double Beta { get; init; }

    /// <summary>Engine-vs-trainer correction (TRL <c>vllm_importance_sampling_correction</c> and <c>_mode</c>).</summary>
    public ImportanceSamplingMode ImportanceSampling { get; init; } = ImportanceSamplingMode.TokenTruncate;

    /// <summary>Cap of the importance-sampling ratio (TRL <c>vllm_importance_sampling_cap</c>).</summary>
    public double ImportanceSamplingCap { get; init; } = 3.0;

    /// <summary>Denominator length of <see cref="PolicyLossType.DrGrpo"/>: the sampling's max new tokens (TRL <c>max_completion_length</c>).</summary>
    public int MaxCompletionLength { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        if (!(Epsilon >= 0 && Epsilon < 1)) throw new ArgumentException($"{nameof(Epsilon)} must be in [0, 1), got {Epsilon}");
        if (EpsilonHigh is { } high && !(high >= 0)) throw new ArgumentException($"{nameof(EpsilonHigh)} must be non-negative, got {high}");
        if (!(Beta >= 0)) throw new ArgumentException($"{nameof(Beta)} must be non-negative, got {Beta}");
        if (!(ImportanceSamplingCap > 0)) throw new ArgumentException($"{nameof(ImportanceSamplingCap)} must be positive, got {ImportanceSamplingCap}");
        if (LossType == PolicyLossType.DrGrpo && MaxCompletionLength < 1)
            throw new ArgumentException($"{nameof(MaxCompletionLength)} must be set (the sampling's max new tokens) for the Dr. GRPO loss");
    }
}
