namespace VectorLm.Sampling.Tests;

public class TokenSamplerTests
{
    // Probabilities 0.5, 0.25, 0.125, 0.0625, ... (logits ln p).
    static readonly float[] Logits = Enumerable.Range(0, 10).Select(i => MathF.Log(MathF.Pow(0.5f, i + 1))).ToArray();

    static HashSet<int> Draw(SamplingParams p, int draws = 2000)
    {
        var sampler = new TokenSampler(Logits.Length);
        var seen = new HashSet<int>();
        for (int i = 0; i < draws; i++)
        {
            var rng = new SampleRng(p.Seed, i, 0);
            seen.Add(sampler.Sample(Logits, p, ref rng, out _));
        }
        return seen;
    }

    [Fact]
    public void Filters_keep_exactly_the_allowed_tokens()
    {
        Assert.Equal(Enumerable.Range(0, 10).ToHashSet(), Draw(new SamplingParams { Temperature = 3f }, 20000));
        Assert.Equal([0, 1, 2], Draw(new SamplingParams { TopK = 3 }));
        Assert.Equal([0], Draw(new SamplingParams { TopP = 0.5f }));          // 0.5 of the mass reached by token 0
        Assert.Equal([0, 1], Draw(new SamplingParams { TopP = 0.7f }));
        Assert.Equal([0, 1, 2], Draw(new SamplingParams { MinP = 0.2f }));    // p >= 0.1: 0.5, 0.25, 0.125
        Assert.Equal([0, 1], Draw(new SamplingParams { TopK = 3, MinP = 0.4f }));
    }

    [Fact]
    public void Frequencies_follow_the_distribution_and_log_probs_ignore_temperature_and_filters()
    {
        var sampler = new TokenSampler(Logits.Length);
        var p = new SamplingParams { TopK = 2 };
        int zeros = 0, n = 20000;
        for (int i = 0; i < n; i++)
        {
            var rng = new SampleRng(1, i, 0);
            int t = sampler.Sample(Logits, p with { Temperature = 1f }, ref rng, out float logProb);
            if (t == 0) zeros++;
            Assert.Equal(MathF.Log(MathF.Pow(0.5f, t + 1)) - MathF.Log(1 - MathF.Pow(0.5f, 10)), logProb, 1e-5f);
        }
        // Renormalised over the top 2: P(0) = 0.5 / 0.75.
        Assert.Equal(2.0 / 3, zeros / (double)n, 0.02);
    }

    [Fact]
    public void Streams_depend_on_seed_prompt_and_sample_index_only()
    {
        ulong First(ulong seed, int prompt, int sample) { var r = new SampleRng(seed, prompt, sample); return r.Next(); }
        Assert.Equal(First(1, 2, 3), First(1, 2, 3));
        Assert.Equal(5, new[] { First(1, 2, 3), First(2, 2, 3), First(1, 3, 3), First(1, 2, 4), First(1, 3, 2) }.Distinct().Count());
    }
}
