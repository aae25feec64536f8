namespace VectorLm.Sampling;

/// <summary>
/// SplitMix64 stream of one sample, seeded by (seed, prompt index, sample index) only, so a sample's tokens do not
/// depend on which other sequences share its batch or on the world size.
/// </summary>
internal struct SampleRng
{
    ulong _state;

    public SampleRng(ulong seed, int promptIndex, int sampleIndex)
    {
        _state = Mix(Mix(Mix(seed) ^ (ulong)(uint)promptIndex) ^ ((ulong)(uint)sampleIndex << 32 | 0x5EEDUL));
    }

    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public ulong Next() => Mix(_state += 0x9E3779B97F4A7C15UL);

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
}

/// <summary>Chooses the next token from logits: greedy, or temperature with top-k, top-p and min-p filters.</summary>
internal sealed class TokenSampler(int vocabSize)
{
    readonly float[] _probs = new float[vocabSize];
    readonly int[] _ids = new int[vocabSize];

    /// <summary>
    /// Picks a token; <paramref name="logProb"/> is its log-probability under the unmodified softmax of
    /// <paramref name="logits"/> (no temperature, no filters), which is what a trainer's policy gradient needs.
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, SamplingParams p, ref SampleRng rng, out float logProb)
    {
        float max = float.NegativeInfinity;
        int argmax = 0;
        for (int i = 0; i < logits.Length; i++)
            if (logits[i] > max) { max = logits[i]; argmax = i; }
        double sum = 0;
        for (int i = 0; i < logits.Length; i++) sum += MathF.Exp(logits[i] - max);
        double logSumExp = max + Math.Log(sum);

        int token = p.Temperature == 0 ? argmax : SampleFiltered(logits, max, p, ref rng);
        logProb = (float)(logits[token] - logSumExp);
        return token;
    }

    int SampleFiltered(ReadOnlySpan<float> logits, float max, SamplingParams p, ref SampleRng rng)
    {
        int n = logits.Length;
        float invT = 1f / p.Temperature;
        // Candidates in descending order are needed only for top-k and top-p.
        int count = n;
        for (int i = 0; i < n; i++) { _ids[i] = i; _probs[i] = MathF.Exp((logits[i] - max) * invT); }
        if (p.TopK > 0 && p.TopK < n || p.TopP < 1f)
        {
            Array.Sort(_probs, _ids, 0, n, DescendingComparer.Instance);
            if (p.TopK > 0 && p.TopK < n) count = p.TopK;
            if (p.TopP < 1f)
            {
                double total = 0;
                for (int i = 0; i < count; i++) total += _probs[i];
                double acc = 0;
                for (int i = 0; i < count; i++)
                {
                    acc += _probs[i];
                    if (acc >= p.TopP * total) { count = i + 1; break; }
                }
            }
        }
        if (p.MinP > 0f)
        {
            // The top token has weight exp(0) = 1 after subtracting the max.
            int kept = 0;
            for (int i = 0; i < count; i++)
                if (_probs[i] >= p.MinP) { _probs[kept] = _probs[i]; _ids[kept] = _ids[i]; kept++; }
            count = kept;
        }
        double mass = 0;
        for (int i = 0; i < count; i++) mass += _probs[i];
        double r = rng.NextDouble() * mass, c = 0;
        for (int i = 0; i < count; i++)
        {
            c += _probs[i];
            if (r < c) return _ids[i];
        }
        return _ids[count - 1];
    }

    sealed class DescendingComparer : IComparer<float>
    {
        public static readonly DescendingComparer Instance = new();
        public int Compare(float x, float y) => y.CompareTo(x);
    }
}
