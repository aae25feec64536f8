using System.Runtime.CompilerServices;

namespace VectorLm.Sampling;

/// <summary>
/// A fast sampler colocated with the trainer. Its weights follow the trained model: after an optimizer step they are
/// marked stale and replaced in place on the next <see cref="Generate(IReadOnlyList{string}, SamplingParams?, string, string, int)"/>
/// (no reload, KV cache cleared). Implementations: <see cref="LlamaSamplingEngine"/> (llama.cpp on the CPU) and
/// <see cref="TorchSamplingEngine"/> (TorchSharp on the model's device).
/// </summary>
public interface ISamplingEngine : IDisposable
{
    // Keep this overload first: the trainer generator intercepts the first Generate member of this interface.
    /// <summary>
    /// Samples completions for <paramref name="prompts"/>. Every rank calls it with the same prompts and receives the
    /// same list, one <see cref="Completion"/> per prompt, in prompt order.
    /// </summary>
    [Collective]
    [OverloadResolutionPriority(1)]   // Generate([]) means no prompts, not no token lists
    IReadOnlyList<Completion> Generate(IReadOnlyList<string> prompts, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);

    /// <summary>
    /// Samples completions for prompts given as token ids, fed exactly as given (no BOS is added): what RL code uses to
    /// continue or re-score exact token sequences. Same collective contract as the string overload.
    /// </summary>
    [Collective]
    IReadOnlyList<Completion> Generate(IReadOnlyList<int[]> promptTokens, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);

    /// <summary>Counts weight updates applied to the engine; 0 for the weights it was built with.</summary>
    long WeightVersion { get; }

    /// <summary>True when the trained weights changed since the engine last copied them.</summary>
    bool IsStale { get; }

    /// <summary>Marks the engine's weights stale; the next Generate or <see cref="SyncWeights"/> copies them.</summary>
    void MarkStale();

    /// <summary>Copies the trained weights into the engine now if they are stale (a collective: ranks sync together).</summary>
    [Collective]
    void SyncWeights([CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0);

    /// <summary>Copies the trainer's weights in now, stale or not (what a swap costs; used by benchmarks). Not a collective.</summary>
    void ForceSync();

    /// <summary>The settings it was built with.</summary>
    EngineOptions Options { get; }

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
