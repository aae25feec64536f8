using System;
using System.Collections.Generic;
using System.Linq;
using System.Runtime.CompilerServices;
using VectorLm;
using VectorLm.Sampling;

namespace Samples.FineTuning;

/// <summary>A stand-in sampler: echoes the prompt with the caller and the weight version it synced to.</summary>
sealed class EchoEngine : ISamplingEngine
{
    readonly IDisposable _subscription;

    public EchoEngine(TrainerContext ctx) => _subscription = ctx.OnWeightsChanged(MarkStale);

    public long WeightVersion { get; private set; }

    public bool IsStale { get; private set; }

    public void MarkStale() => IsStale = true;

    public void SyncWeights([CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (!IsStale) return;
        WeightVersion++;
        IsStale = false;
    }

    public IReadOnlyList<Completion> Generate(IReadOnlyList<string> prompts, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) =>
        prompts.Select((prompt, i) => new Completion(i,
            new[] { new Sample($"{prompt} from {member}:{line}", Array.Empty<int>(), Array.Empty<float>(), FinishReason.Stop, WeightVersion) }))
        .ToArray();

    public void Dispose() => _subscription.Dispose();
}
