namespace VectorLm.Reinforcement.Tests;

public class AdvantagesTests
{
    // Two groups of 4: one with spread, one whose rewards all equal.
    static readonly float[] Rewards = [1, 0, 0, 1, 2, 2, 2, 2];

    [Fact]
    public void Group_scaling_divides_by_the_unbiased_group_std_and_zero_variance_groups_get_zero()
    {
        var a = Advantages.GroupNormalized(Rewards, groupSize: 4, RewardScaling.Group);
        double std = Math.Sqrt(4 * 0.25 / 3); // unbiased std of {1,0,0,1}
        double expected = 0.5 / (std + Advantages.Epsilon);
        Assert.Equal([expected, -expected, -expected, expected], a.Take(4).Select(x => (double)x), new Tolerance(1e-5));
        Assert.All(a.Skip(4), x => Assert.Equal(0f, x));
    }

    [Fact]
    public void No_scaling_is_reward_minus_group_mean()
    {
        var a = Advantages.GroupNormalized(Rewards, 4, RewardScaling.None);
        Assert.Equal([0.5f, -0.5f, -0.5f, 0.5f, 0, 0, 0, 0], a);
    }

    [Fact]
    public void Batch_scaling_divides_by_the_std_of_all_rewards()
    {
        var a = Advantages.GroupNormalized(Rewards, 4, RewardScaling.Batch);
        double mean = Rewards.Average(x => (double)x);
        double std = Math.Sqrt(Rewards.Sum(x => (x - mean) * (x - mean)) / (Rewards.Length - 1));
        Assert.Equal(0.5 / (std + Advantages.Epsilon), a[0], 5);
        Assert.Equal(0f, a[5]);
    }

    [Fact]
    public void Leave_one_out_subtracts_the_mean_of_the_other_samples()
    {
        var a = Advantages.LeaveOneOut([1, 0, 0, 1, 3, 0, 0, 0], 4);
        Assert.Equal([1 - 1 / 3.0, -2 / 3.0, -2 / 3.0, 1 - 1 / 3.0, 3, -1, -1, -1], a.Select(x => (double)x), new Tolerance(1e-6));
        Assert.Throws<ArgumentOutOfRangeException>(() => Advantages.LeaveOneOut([1, 2], 1));
    }

    [Fact]
    public void Fraction_of_zero_std_groups()
    {
        Assert.Equal(0.5, Advantages.FractionZeroStd(Rewards, 4));
    }

    [Fact]
    public void Bad_layouts_and_non_finite_rewards_are_rejected()
    {
        Assert.Contains("whole groups", Assert.Throws<ArgumentException>(() => Advantages.GroupNormalized([1, 2, 3], 2)).Message);
        Assert.Contains("reward 1", Assert.Throws<ArgumentException>(() => Advantages.GroupNormalized([1, float.NaN], 2)).Message);
    }

    sealed class Tolerance(double epsilon) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= epsilon;
        public int GetHashCode(double obj) => 0;
    }
}
