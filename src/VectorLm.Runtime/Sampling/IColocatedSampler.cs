using System.Runtime.CompilerServices;

namespace VectorLm.Sampling;

/// <summary>
/// A sampling engine built from the trainer's model by <see cref="SamplerExtensions.CreateSampler"/>:
/// <see cref="LlamaSamplingEngine"/> (llama.cpp on the CPU) or <see cref="TorchSamplingEngine"/> (TorchSharp on the
/// model's device). Besides <see cref="ISamplingEngine"/> it takes prompts as token ids and exposes its weights, cache
/// and parity gate.
/// </summary>
public interface IColocatedSampler : ISamplingEngine
{
    /// <summary>
    /// Samples completions for prompts given as token ids, fed exactly as given (no BOS is added): what RL code uses to
    /// continue or re-score exact token sequences. Same collective contract as the string overload. (Declared here, not
    /// on <see cref="ISamplingEngine"/>, so engines users write need not take token ids; <c>Generate([])</c> through this
    /// interface binds here and returns no completions, as the string overload would.)
    /// </summary>
    [Collective]
    IReadOnlyList<Completion> Generate(IReadOnlyList<int[]> promptTokens, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);

    /// <summary>Copies the trainer's weights in now, stale or not (what a swap costs; used by benchmarks). Not a collective.</summary>
    void ForceSync();

    /// <summary>The settings it was built with.</summary>
    EngineOptions Options { get; }

    /// <summary>Element type of its weight matrices: <see cref="EngineOptions.WeightType"/>, or the engine's default for its device.</summary>
    EngineWeightType WeightType { get; }

    /// <summary>Tokens per sequence (prompt plus generated).</summary>
    int ContextLength { get; }

    /// <summary>Bytes the engine's weights occupy (what a swap writes).</summary>
    long WeightBytes { get; }

    /// <summary>True while the KV cache is allocated.</summary>
    bool HoldsCache { get; }

    /// <summary>Frees the KV cache; the next generate allocates it again.</summary>
    void ReleaseCache();

    /// <summary>Tokens the engine feeds for <paramref name="prompt"/> (BOS, when <see cref="EngineOptions.AddBos"/>, plus the tokenizer's ids).</summary>
    int[] TokenizePrompt(string prompt);

    /// <summary>
    /// Compares the engine's logits with the trainer model's on a fixed probe batch and throws
    /// <see cref="WeightParityException"/> when max|diff| / max|logit| exceeds the tolerance.
    /// </summary>
    ParityReport CheckParity();
}
