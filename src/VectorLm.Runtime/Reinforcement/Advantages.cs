namespace VectorLm.Reinforcement;

/// <summary>How group-normalised advantages are scaled (TRL's <c>scale_rewards</c>).</summary>
public enum RewardScaling
{
    /// <summary>No scaling: reward minus the group mean (Dr. GRPO's recommendation).</summary>
    None,
    /// <summary>Divide by the group's standard deviation (the original GRPO).</summary>
    Group,
    /// <summary>Divide by the standard deviation of the whole batch's rewards.</summary>
    Batch,
}

/// <summary>Advantages from rewards laid out prompt-major: <c>rewards[prompt * groupSize + sample]</c>.</summary>
public static class Advantages
{
    /// <summary>Added to a standard deviation before dividing, so a zero-variance group gives advantage 0, not NaN.</summary>
    public const float Epsilon = 1e-4f;

    /// <summary>
    /// GRPO: each reward minus its group's mean, divided per <paramref name="scaling"/> by a standard deviation
    /// (unbiased, as <c>torch.std</c>) plus <see cref="Epsilon"/>. A group whose rewards are all equal gets 0.
    /// </summary>
    public static float[] GroupNormalized(IReadOnlyList<float> rewards, int groupSize, RewardScaling scaling = RewardScaling.Group)
    {
        CheckLayout(rewards, groupSize);
        var result = new float[rewards.Count];
        double batchStd = scaling == RewardScaling.Batch ? Std(rewards, 0, rewards.Count) : 1;
        for (int g = 0; g < rewards.Count / groupSize; g++)
        {
            int start = g * groupSize;
            double mean = Mean(rewards, start, groupSize);
            double scale = scaling switch
            {
                RewardScaling.None => 1,
                RewardScaling.Group => Std(rewards, start, groupSize) + Epsilon,
                RewardScaling.Batch => batchStd + Epsilon,
                _ => throw new ArgumentOutOfRangeException(nameof(scaling), scaling, "unknown reward scaling"),
            };
            for (int i = start; i < start + groupSize; i++) result[i] = (float)((rewards[i] - mean) / scale);
        }
        return result;
    }

    /// <summary>
    /// RLOO: each reward minus the mean of the other rewards of its group (leave-one-out baseline). Needs groups of at
    /// least 2.
    /// </summary>
    public static float[] LeaveOneOut(IReadOnlyList<float> rewards, int groupSize)
    {
        CheckLayout(rewards, groupSize);
        if (groupSize < 2) throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "a leave-one-out baseline needs at least 2 samples per prompt");
        var result = new float[rewards.Count];
        for (int g = 0; g < rewards.Count / groupSize; g++)
        {
            int start = g * groupSize;
            double sum = 0;
            for (int i = start; i < start + groupSize; i++) sum += rewards[i];
            for (int i = start; i < start + groupSize; i++) result[i] = (float)(rewards[i] - (sum - rewards[i]) / (groupSize - 1));
        }
        return result;
    }

    /// <summary>Fraction of groups whose rewards all equal (they teach nothing under GRPO: TRL's <c>frac_reward_zero_std</c>).</summary>
    public static double FractionZeroStd(IReadOnlyList<float> rewards, int groupSize)
    {
        CheckLayout(rewards, groupSize);
        int groups = rewards.Count / groupSize, flat = 0;
        for (int g = 0; g < groups; g++)
            if (Std(rewards, g * groupSize, groupSize) < 1e-8) flat++;
        return groups == 0 ? 0 : (double)flat / groups;
    }

    static void CheckLayout(IReadOnlyList<float> rewards, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentOutOfRangeException.ThrowIfLessThan(groupSize, 1);
        if (rewards.Count % groupSize != 0)
            throw new ArgumentException($"{rewards.Count} rewards are not whole groups of {groupSize}", nameof(rewards));
        for (int i = 0; i < rewards.Count; i++)
            if (!float.IsFinite(rewards[i])) throw new ArgumentException($"reward {i} is {rewards[i]}; rewards must be finite", nameof(rewards));
    }

    static double Mean(IReadOnlyList<float> x, int start, int count)
    {
        double sum = 0;
        for (int i = start; i < start + count; i++) sum += x[i];
        return sum / count;
    }

    /// <summary>Unbiased standard deviation (0 for a single value, where torch.std gives NaN).</summary>
    internal static double Std(IReadOnlyList<float> x, int start, int count)
    {
        if (count < 2) return 0;
        double mean = Mean(x, start, count), sum = 0;
        for (int i = start; i < start + count; i++) sum += (x[i] - mean) * (x[i] - mean);
        return Math.Sqrt(sum / (count - 1));
    }
}
