using static TorchSharp.torch;

namespace VectorLm.Reinforcement;

/// <summary>The tensors a policy loss reads; all <c>[rows, C]</c> except <see cref="Advantages"/> (<c>[rows]</c>).</summary>
/// <param name="LogProbs">Current log-probabilities of the sampled tokens, with their graph.</param>
/// <param name="Advantages">One advantage per row.</param>
/// <param name="Mask">1 on real completion tokens, 0 on padding.</param>
/// <param name="TotalCompletionTokens">Completion tokens of the whole rollout over all ranks (DAPO's normaliser).</param>
/// <param name="WorldSize">Ranks whose gradients are averaged.</param>
public sealed record PolicyLossInputs(Tensor LogProbs, Tensor Advantages, Tensor Mask, long TotalCompletionTokens, int WorldSize = 1)
{
    /// <summary>Log-probabilities under the policy that sampled, by the trainer (no graph); null: <see cref="LogProbs"/> detached (one update per rollout).</summary>
    public Tensor? OldLogProbs { get; init; }
    /// <summary>The engine's log-probabilities of the sampled tokens; null: no importance-sampling correction and no mismatch metric.</summary>
    public Tensor? EngineLogProbs { get; init; }
    /// <summary>The reference model's log-probabilities (needed when Beta &gt; 0).</summary>
    public Tensor? ReferenceLogProbs { get; init; }
    /// <summary>Per-token entropy, for the metric only.</summary>
    public Tensor? Entropy { get; init; }
}

/// <summary>What <see cref="PolicyLoss.Compute(PolicyLossInputs, PolicyLossOptions)"/> returns.</summary>
/// <param name="Loss">The scalar to call <c>backward()</c> on.</param>
/// <param name="Statistics">
/// A detached float32 vector <c>[loss, clip_ratio, kl, entropy, logprob_mismatch, importance_ratio]</c> (NaN where not
/// computed), one tensor so ranks can average it with one all-reduce; read it with <see cref="PolicyStatistics.FromTensor"/>.
/// </param>
public sealed record PolicyLossResult(Tensor Loss, Tensor Statistics);

/// <summary>The policy loss statistics of one step (masked means over completion tokens).</summary>
/// <param name="Loss">The loss value.</param>
/// <param name="ClipRatio">Fraction of tokens whose ratio was clipped where it mattered (below 1-eps with A &lt; 0, above 1+eps_high with A &gt; 0).</param>
/// <param name="Kl">Mean k3 KL to the reference model; NaN without one.</param>
/// <param name="Entropy">Mean entropy of the policy at the completion tokens; NaN when not given.</param>
/// <param name="LogProbMismatch">Mean |engine - trainer| log-probability of the sampled tokens; NaN without engine log-probs.</param>
/// <param name="ImportanceRatio">Mean importance-sampling weight applied; NaN when no correction was applied.</param>
public readonly record struct PolicyStatistics(double Loss, double ClipRatio, double Kl, double Entropy, double LogProbMismatch, double ImportanceRatio)
{
    /// <summary>Reads a <see cref="PolicyLossResult.Statistics"/> vector (possibly averaged over ranks).</summary>
    public static PolicyStatistics FromTensor(Tensor statistics)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        using var cpu = statistics.cpu();
        var v = cpu.data<float>().ToArray();
        if (v.Length != 6) throw new ArgumentException($"expected 6 statistics, got {v.Length}", nameof(statistics));
        return new PolicyStatistics(v[0], v[1], v[2], v[3], v[4], v[5]);
    }
}

/// <summary>
/// The clipped surrogate loss of PPO/GRPO over a rollout, with the engine-vs-trainer importance-sampling correction and
/// an optional k3 KL penalty to a reference model.
/// </summary>
/// <remarks>
/// Per token: <c>r = exp(logp - old)</c>, <c>loss = -min(r A, clip(r, 1-eps, 1+eps_high) A)</c>, times the
/// importance weight <c>min(exp(old - engine), cap)</c> (detached), plus <c>beta (exp(ref - logp) - (ref - logp) - 1)</c>;
/// then aggregated per <see cref="PolicyLossOptions.LossType"/>.
/// </remarks>
public static class PolicyLoss
{
    /// <summary>The loss of <paramref name="policy"/> on <paramref name="rollout"/>'s completions.</summary>
    public static PolicyLossResult Compute(Rollout rollout, PolicyLogProbs policy, PolicyLossOptions options,
        Tensor? oldLogProbs = null, Tensor? referenceLogProbs = null)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(policy);
        return Compute(new PolicyLossInputs(policy.LogProbs, rollout.Advantages, rollout.CompletionMask, rollout.TotalCompletionTokens, rollout.WorldSize)
        {
            OldLogProbs = oldLogProbs,
            EngineLogProbs = rollout.EngineLogProbs,
            ReferenceLogProbs = referenceLogProbs,
            Entropy = policy.Entropy,
        }, options);
    }

    /// <summary>The loss over explicit tensors.</summary>
    public static PolicyLossResult Compute(PolicyLossInputs inputs, PolicyLossOptions options)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.Beta > 0 && inputs.ReferenceLogProbs is null)
            throw new ArgumentException($"Beta is {options.Beta} but no reference log-probs were given; compute them with the reference model under no_grad", nameof(inputs));
        var logp = inputs.LogProbs;
        using var scope = NewDisposeScope();
        var mask = inputs.Mask.to(ScalarType.Float32);
        var old = inputs.OldLogProbs ?? logp.detach();
        var advantages = inputs.Advantages.to(ScalarType.Float32).unsqueeze(1);
        double low = options.Epsilon, high = options.EpsilonHigh ?? options.Epsilon;

        var ratio = (logp - old).exp();
        var clipped = ratio.clamp(1 - low, 1 + high);
        var perToken = -minimum(ratio * advantages, clipped * advantages);

        Tensor? weight = null;
        if (inputs.EngineLogProbs is { } engine && options.ImportanceSampling != ImportanceSamplingMode.None)
        {
            using (no_grad())
            {
                var diff = (old.detach() - engine) * mask;
                bool sequence = options.ImportanceSampling is ImportanceSamplingMode.SequenceTruncate or ImportanceSamplingMode.SequenceMask;
                var w = (sequence ? diff.sum(-1, keepdim: true) : diff).exp();
                w = options.ImportanceSampling is ImportanceSamplingMode.TokenTruncate or ImportanceSamplingMode.SequenceTruncate
                    ? w.clamp_max(options.ImportanceSamplingCap)
                    : w.masked_fill(w > options.ImportanceSamplingCap, 0.0);
                weight = w.expand_as(perToken);
            }
            perToken = perToken * weight;
        }

        Tensor? kl = null;
        if (inputs.ReferenceLogProbs is { } reference)
        {
            var delta = reference - logp;
            kl = delta.exp() - delta - 1;
            if (options.Beta > 0) perToken = perToken + options.Beta * kl;
        }

        var masked = perToken * mask;
        var loss = options.LossType switch
        {
            PolicyLossType.Grpo => (masked.sum(-1) / mask.sum(-1).clamp_min(1)).mean(),
            // Ranks average gradients, so each rank divides by its share of the global token count.
            PolicyLossType.Dapo => masked.sum() / Math.Max(1.0, (double)inputs.TotalCompletionTokens / inputs.WorldSize),
            PolicyLossType.DrGrpo => masked.sum() / ((double)logp.shape[0] * options.MaxCompletionLength),
            _ => throw new ArgumentOutOfRangeException(nameof(options), options.LossType, "unknown loss type"),
        };

        Tensor statistics;
        using (no_grad())
        {
            var tokens = mask.sum().clamp_min(1);
            Tensor MaskedMean(Tensor x) => (x.detach() * mask).sum() / tokens;
            var nan = tensor(float.NaN, ScalarType.Float32, device: logp.device);
            var clippedRegion = (ratio.detach().lt(1 - low) & advantages.lt(0)) | (ratio.detach().gt(1 + high) & advantages.gt(0));
            statistics = stack([
                loss.detach().to(ScalarType.Float32),
                MaskedMean(clippedRegion.to(ScalarType.Float32)),
                kl is null ? nan : MaskedMean(kl),
                inputs.Entropy is null ? nan : MaskedMean(inputs.Entropy),
                inputs.EngineLogProbs is null ? nan : MaskedMean((old.detach() - inputs.EngineLogProbs).abs()),
                weight is null ? nan : MaskedMean(weight),
            ]);
        }
        return new PolicyLossResult(loss.MoveToOuterDisposeScope(), statistics.MoveToOuterDisposeScope());
    }
}
