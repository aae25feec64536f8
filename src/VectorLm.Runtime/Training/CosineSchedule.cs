namespace VectorLm.Training;

/// <summary>
/// Linear warm-up to <see cref="PeakLearningRate"/> over <see cref="WarmupSteps"/> steps, then cosine decay to
/// <see cref="MinLearningRate"/> at <see cref="TotalSteps"/> (held there afterwards).
/// </summary>
public sealed record CosineSchedule(double PeakLearningRate, int WarmupSteps, int TotalSteps, double MinLearningRate = 0)
{
    /// <summary>The learning rate for zero-based <paramref name="step"/>. Step 0 already has a non-zero rate.</summary>
    public double LearningRate(int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "step must not be negative");
        if (step < WarmupSteps) return PeakLearningRate * (step + 1) / WarmupSteps;
        int decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Min(1.0, (double)(step - WarmupSteps) / decaySteps);
        return MinLearningRate + (PeakLearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
