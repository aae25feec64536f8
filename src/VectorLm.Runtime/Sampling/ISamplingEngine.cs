using System.Runtime.CompilerServices;

namespace VectorLm.Sampling;

/// <summary>
/// A fast sampler colocated with the trainer. Its weights follow the trained model: after an optimizer step they are
/// marked stale and replaced in place on the next <see cref="Generate(IReadOnlyList{string}, SamplingParams?, string, string, int)"/>
/// (no reload, KV cache cleared). The SDK's engines (<see cref="IColocatedSampler"/>) add prompts as token ids and
/// the cache and weight controls.
/// </summary>
public interface ISamplingEngine : IDisposable
{
    /// <summary>
    /// Samples completions for <paramref name="prompts"/>. Every rank calls it with the same prompts and receives the
    /// same list, one <see cref="Completion"/> per prompt, in prompt order.
    /// </summary>
    [Collective]
    IReadOnlyList<Completion> Generate(IReadOnlyList<string> prompts, SamplingParams? parameters = null,
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
}
