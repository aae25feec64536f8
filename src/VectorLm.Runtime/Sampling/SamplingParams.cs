namespace VectorLm.Sampling;

/// <summary>How to sample. The defaults give one greedy-free sample of up to 64 tokens at temperature 1.</summary>
public sealed record SamplingParams
{
    /// <summary>Most tokens generated per sample (at least 1).</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Softmax temperature; 0 means greedy (argmax).</summary>
    public float Temperature { get; init; } = 1.0f;

    /// <summary>Keep only the k most likely tokens; 0 disables.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling mass in (0, 1]; 1 disables.</summary>
    public float TopP { get; init; } = 1.0f;

    /// <summary>Drop tokens whose probability is below MinP times the top token's; 0 disables.</summary>
    public float MinP { get; init; }

    /// <summary>Samples per prompt (at least 1).</summary>
    public int N { get; init; } = 1;

    /// <summary>Generation of a sample stops after any of these strings appears (it is kept in the text).</summary>
    public IReadOnlyList<string> Stop { get; init; } = Array.Empty<string>();

    /// <summary>Seed of the per-sample random streams; a sample's stream depends on (Seed, prompt index, sample index) only.</summary>
    public ulong Seed { get; init; }

    /// <summary>Keep generating after the end-of-sequence token (as vLLM's <c>ignore_eos</c>; benchmarks use it for fixed lengths).</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Greedy decoding of <paramref name="maxNewTokens"/> tokens.</summary>
    public static SamplingParams Greedy(int maxNewTokens = 64) => new() { Temperature = 0, MaxNewTokens = maxNewTokens };
}
