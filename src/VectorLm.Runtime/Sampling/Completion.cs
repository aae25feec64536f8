namespace VectorLm.Sampling;

/// <summary>Why a sample ended.</summary>
public enum FinishReason
{
    /// <summary>It reached <see cref="SamplingParams.MaxNewTokens"/>.</summary>
    Length,
    /// <summary>One of <see cref="SamplingParams.Stop"/> appeared.</summary>
    Stop,
    /// <summary>The model produced its end-of-sequence token.</summary>
    EndOfSequence,
}

/// <summary>One sampled continuation of a prompt.</summary>
/// <param name="Text">The decoded continuation (without the prompt).</param>
/// <param name="TokenIds">The generated token ids.</param>
/// <param name="LogProbs">Log-probability of each generated token under the engine's (unmodified) distribution.</param>
/// <param name="FinishReason">Why it ended.</param>
/// <param name="WeightVersion">The engine weight version that produced it.</param>
public sealed record Sample(string Text, IReadOnlyList<int> TokenIds, IReadOnlyList<float> LogProbs, FinishReason FinishReason, long WeightVersion);

/// <summary>The samples of one prompt.</summary>
/// <param name="PromptIndex">Index of the prompt in the list passed to <c>ISamplingEngine.Generate</c>.</param>
/// <param name="Samples">Its <see cref="SamplingParams.N"/> samples, in sample-index order.</param>
public sealed record Completion(int PromptIndex, IReadOnlyList<Sample> Samples);
