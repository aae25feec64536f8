using static TorchSharp.torch;

namespace VectorLm.Reinforcement.Tests;

public class PolicyLossTests
{
    // Two completions: 2 real tokens + 1 padding, and 3 real tokens.
    static Tensor Mask() => tensor(new float[] { 1, 1, 0, 1, 1, 1 }, [2, 3]);

    static Tensor LogProbs(params float[] values) => tensor(values, [values.Length / 3, 3]).requires_grad_(true);

    static PolicyLossInputs Inputs(Tensor logp, float[] advantages, Tensor? old = null, Tensor? engine = null, Tensor? reference = null) =>
        new(logp, tensor(advantages), Mask(), TotalCompletionTokens: 5) { OldLogProbs = old, EngineLogProbs = engine, ReferenceLogProbs = reference };

    static PolicyStatistics Stats(PolicyLossResult r) => PolicyStatistics.FromTensor(r.Statistics);

    static readonly PolicyLossOptions NoCorrection = new() { ImportanceSampling = ImportanceSamplingMode.None };

    [Fact]
    public void On_policy_losses_aggregate_per_loss_type()
    {
        // Ratio 1 everywhere: per-token loss is -A. Row 0 (A = 1): -1, -1 (+ padding); row 1 (A = -2): 2, 2, 2.
        var logp = LogProbs(-1, -2, -3, -1, -1, -1);
        float[] a = [1, -2];
        Assert.Equal((-2 + 6) / 5.0, PolicyLoss.Compute(Inputs(logp, a), NoCorrection with { LossType = PolicyLossType.Dapo }).Loss.item<float>(), 5);
        Assert.Equal((-1 + 2) / 2.0, PolicyLoss.Compute(Inputs(logp, a), NoCorrection with { LossType = PolicyLossType.Grpo }).Loss.item<float>(), 5);
        Assert.Equal(4 / (2.0 * 4), PolicyLoss.Compute(Inputs(logp, a), NoCorrection with { LossType = PolicyLossType.DrGrpo, MaxCompletionLength = 4 }).Loss.item<float>(), 5);
    }

    [Fact]
    public void Dapo_divides_by_this_ranks_share_of_the_rollout_tokens()
    {
        var logp = LogProbs(-1, -2, -3, -1, -1, -1);
        var inputs = Inputs(logp, [1, -2]) with { TotalCompletionTokens = 20, WorldSize = 2 };
        Assert.Equal(4 / 10.0, PolicyLoss.Compute(inputs, NoCorrection).Loss.item<float>(), 5);
    }

    [Fact]
    public void On_policy_gradient_is_minus_advantage_over_tokens_and_zero_on_padding()
    {
        var logp = LogProbs(-1, -2, -3, -1, -1, -1);
        PolicyLoss.Compute(Inputs(logp, [1, -2]), NoCorrection).Loss.backward();
        Assert.Equal([-0.2f, -0.2f, 0, 0.4f, 0.4f, 0.4f], logp.grad!.data<float>().ToArray().Select(x => MathF.Round(x, 5)));
    }

    [Theory]
    // ratio, advantage, expected per-token loss, counted as clipped
    [InlineData(1.5, 1, -1.2, true)]    // above 1 + eps with A > 0: clipped
    [InlineData(1.5, -1, 1.5, false)]   // above with A < 0: the unclipped term is the minimum
    [InlineData(0.5, -1, 0.8, true)]    // below 1 - eps with A < 0: clipped
    [InlineData(0.5, 1, -0.5, false)]   // below with A > 0: unclipped
    [InlineData(1.1, 1, -1.1, false)]   // inside the clip range
    public void Clip_boundaries(double ratio, float advantage, double expected, bool clipped)
    {
        var old = tensor(new float[] { -1, -1, -1, -1, -1, -1 }, [2, 3]);
        float l = (float)(Math.Log(ratio) - 1);
        var logp = LogProbs(l, l, l, l, l, l);
        var r = PolicyLoss.Compute(Inputs(logp, [advantage, advantage], old), NoCorrection with { LossType = PolicyLossType.Grpo, Epsilon = 0.2 });
        Assert.Equal(expected, r.Loss.item<float>(), 4);
        Assert.Equal(clipped ? 1.0 : 0.0, Stats(r).ClipRatio, 6);
    }

    [Fact]
    public void Epsilon_high_widens_only_the_upper_bound()
    {
        var old = zeros(2, 3);
        float l = MathF.Log(1.25f);
        var logp = LogProbs(l, l, l, l, l, l);
        var r = PolicyLoss.Compute(Inputs(logp, [1, 1], old), NoCorrection with { LossType = PolicyLossType.Grpo, Epsilon = 0.2, EpsilonHigh = 0.28 });
        Assert.Equal(-1.25, r.Loss.item<float>(), 4);
        Assert.Equal(0, Stats(r).ClipRatio);
    }

    [Theory]
    [InlineData(ImportanceSamplingMode.TokenTruncate, 3.0, 1.5)]   // token ratios 5 -> 3 and 1.5 (row 0); row 1 ratio 1
    [InlineData(ImportanceSamplingMode.TokenMask, 0.0, 1.5)]       // ratio 5 > cap: weight 0
    [InlineData(ImportanceSamplingMode.SequenceTruncate, 3.0, 3.0)] // row 0 product 7.5 -> 3 for both tokens
    [InlineData(ImportanceSamplingMode.SequenceMask, 0.0, 0.0)]     // row 0 product 7.5 > cap: whole row weight 0
    public void Importance_sampling_weights_are_capped_or_masked(ImportanceSamplingMode mode, double weight0, double weight1)
    {
        // Trainer (old = current) minus engine: row 0 tokens ln 5 and ln 1.5; the padding position's huge gap must be ignored.
        var logp = LogProbs(-1, -1, -1, -1, -1, -1);
        var engine = tensor(new float[] { -1 - MathF.Log(5), -1 - MathF.Log(1.5f), -50, -1, -1, -1 }, [2, 3]);
        var r = PolicyLoss.Compute(Inputs(logp, [1, 0], engine: engine), new PolicyLossOptions
        {
            LossType = PolicyLossType.Dapo, ImportanceSampling = mode, ImportanceSamplingCap = 3,
        });
        // Row 1 has advantage 0, so the loss is row 0's: -(w0 + w1) / 5 tokens.
        Assert.Equal(-(weight0 + weight1) / 5, r.Loss.item<float>(), 4);
        var s = Stats(r);
        Assert.Equal((Math.Log(5) + Math.Log(1.5)) / 5, s.LogProbMismatch, 4); // mean |engine - trainer| over the 5 real tokens
    }

    [Fact]
    public void K3_kl_to_the_reference_is_added_with_beta()
    {
        // ref - logp = ln 2 on every token: k3 = 2 - ln 2 - 1.
        var logp = LogProbs(-2, -2, -2, -2, -2, -2);
        var reference = full(2, 3, -2 + MathF.Log(2));
        double k3 = 2 - Math.Log(2) - 1;
        var r = PolicyLoss.Compute(Inputs(logp, [0, 0], reference: reference), NoCorrection with { Beta = 0.5 });
        Assert.Equal(0.5 * k3, r.Loss.item<float>(), 5);
        Assert.Equal(k3, Stats(r).Kl, 5);

        var same = PolicyLoss.Compute(Inputs(logp, [0, 0], reference: logp.detach()), NoCorrection with { Beta = 0.5 });
        Assert.Equal(0, Stats(same).Kl, 6);
    }

    [Fact]
    public void Beta_without_reference_and_bad_options_are_rejected()
    {
        var logp = LogProbs(-1, -1, -1, -1, -1, -1);
        Assert.Contains("reference", Assert.Throws<ArgumentException>(() => PolicyLoss.Compute(Inputs(logp, [1, 1]), new PolicyLossOptions { Beta = 0.1 })).Message);
        Assert.Contains("MaxCompletionLength", Assert.Throws<ArgumentException>(() => PolicyLoss.Compute(Inputs(logp, [1, 1]), new PolicyLossOptions { LossType = PolicyLossType.DrGrpo })).Message);
        Assert.Contains("Epsilon", Assert.Throws<ArgumentException>(() => PolicyLoss.Compute(Inputs(logp, [1, 1]), new PolicyLossOptions { Epsilon = 1.5 })).Message);
    }

    [Fact]
    public void Statistics_without_engine_reference_or_entropy_are_NaN()
    {
        var r = PolicyLoss.Compute(Inputs(LogProbs(-1, -1, -1, -1, -1, -1), [1, 1]), new PolicyLossOptions());
        var s = Stats(r);
        Assert.True(double.IsNaN(s.Kl) && double.IsNaN(s.Entropy) && double.IsNaN(s.LogProbMismatch) && double.IsNaN(s.ImportanceRatio));
    }
}
