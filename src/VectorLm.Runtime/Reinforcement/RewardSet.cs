using VectorLm.Sampling;

namespace VectorLm.Reinforcement;

/// <summary>
/// Scores one completion. Returns null where the reward does not apply (it is then left out of that completion's
/// weighted sum, as TRL does with <c>None</c>).
/// </summary>
/// <param name="prompt">The prompt.</param>
/// <param name="completion">The completion's text.</param>
/// <param name="completionIds">The completion's token ids (an end-of-sequence token included when the model produced it).</param>
/// <param name="fields">The example's other fields (e.g. the reference answer); empty when none were given.</param>
public delegate float? RewardFunction(string prompt, string completion, IReadOnlyList<int> completionIds, IReadOnlyDictionary<string, string> fields);

/// <summary>A <see cref="RewardFunction"/> that awaits something (a verifier process, a judge service).</summary>
public delegate Task<float?> AsyncRewardFunction(string prompt, string completion, IReadOnlyList<int> completionIds,
    IReadOnlyDictionary<string, string> fields, CancellationToken cancellationToken);

/// <summary>Rewards of a rollout, prompt-major (<c>[prompt * groupSize + sample]</c>).</summary>
/// <param name="Total">Weighted sum of the rewards that applied to each completion (0 where none applied).</param>
/// <param name="PerReward">Each reward's raw values by name; NaN where it returned null.</param>
public sealed record RewardScores(float[] Total, IReadOnlyDictionary<string, float[]> PerReward)
{
    /// <summary>Mean of reward <paramref name="name"/> over the completions it applied to (NaN if none).</summary>
    public double Mean(string name)
    {
        var values = PerReward[name].Where(float.IsFinite).ToList();
        return values.Count == 0 ? double.NaN : values.Average(v => (double)v);
    }
}

/// <summary>
/// Several reward functions with weights; <see cref="ScoreAsync"/> calls each on every completion of a rollout and
/// sums them (TRL's <c>reward_funcs</c> and <c>reward_weights</c>).
/// </summary>
/// <remarks>
/// Every rank receives the whole rollout from <c>Generate</c>; scoring it whole on every rank keeps the advantages equal
/// on all ranks without a collective, so reward functions must be deterministic.
/// </remarks>
public sealed class RewardSet
{
    static readonly IReadOnlyDictionary<string, string> NoFields = new Dictionary<string, string>();
    readonly List<(string Name, AsyncRewardFunction Function, float Weight)> _rewards = new();

    /// <summary>The rewards' names, in the order added.</summary>
    public IReadOnlyList<string> Names => _rewards.Select(r => r.Name).ToList();

    /// <summary>Adds a reward; names must be unique.</summary>
    public RewardSet Add(string name, RewardFunction function, float weight = 1)
    {
        ArgumentNullException.ThrowIfNull(function);
        return Add(name, (p, c, ids, f, _) => Task.FromResult(function(p, c, ids, f)), weight);
    }

    /// <summary>Adds an async reward; names must be unique.</summary>
    public RewardSet Add(string name, AsyncRewardFunction function, float weight = 1)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(function);
        if (!float.IsFinite(weight)) throw new ArgumentOutOfRangeException(nameof(weight), weight, $"the weight of reward '{name}' must be finite");
        if (_rewards.Any(r => r.Name == name)) throw new ArgumentException($"a reward named '{name}' was already added", nameof(name));
        _rewards.Add((name, function, weight));
        return this;
    }

    /// <summary>
    /// Scores every sample of <paramref name="completions"/> (one per prompt, in prompt order) with every reward; all
    /// calls run concurrently.
    /// </summary>
    /// <param name="prompts">The prompts given to <c>Generate</c>.</param>
    /// <param name="completions">What <c>Generate</c> returned.</param>
    /// <param name="fields">Per-prompt fields passed to the rewards; null for none.</param>
    /// <param name="cancellationToken">Passed to async rewards.</param>
    /// <exception cref="InvalidOperationException">A reward threw or returned a non-finite value; the message names it and the completion.</exception>
    public async Task<RewardScores> ScoreAsync(IReadOnlyList<string> prompts, IReadOnlyList<Completion> completions,
        IReadOnlyList<IReadOnlyDictionary<string, string>>? fields = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(completions);
        if (_rewards.Count == 0) throw new InvalidOperationException("the reward set is empty; Add at least one reward");
        if (completions.Count != prompts.Count) throw new ArgumentException($"{completions.Count} completions for {prompts.Count} prompts", nameof(completions));
        if (fields is not null && fields.Count != prompts.Count) throw new ArgumentException($"{fields.Count} field sets for {prompts.Count} prompts", nameof(fields));
        var items = completions.SelectMany(c => c.Samples.Select(s => (Prompt: c.PromptIndex, Sample: s))).ToList();
        var perReward = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var calls = new List<Task>();
        foreach (var (name, function, _) in _rewards)
        {
            var values = new float[items.Count];
            perReward[name] = values;
            for (int i = 0; i < items.Count; i++)
            {
                int index = i;
                var (p, sample) = items[i];
                calls.Add(Score(name, function, prompts[p], sample, fields?[p] ?? NoFields, values, index, cancellationToken));
            }
        }
        await Task.WhenAll(calls).ConfigureAwait(false);

        var total = new float[items.Count];
        foreach (var (name, _, weight) in _rewards)
        {
            var values = perReward[name];
            for (int i = 0; i < total.Length; i++)
                if (!float.IsNaN(values[i])) total[i] += weight * values[i];
        }
        return new RewardScores(total, perReward);
    }

    /// <summary><see cref="ScoreAsync"/>, waited for.</summary>
    public RewardScores Score(IReadOnlyList<string> prompts, IReadOnlyList<Completion> completions,
        IReadOnlyList<IReadOnlyDictionary<string, string>>? fields = null) =>
        ScoreAsync(prompts, completions, fields).GetAwaiter().GetResult();

    static async Task Score(string name, AsyncRewardFunction function, string prompt, Sample sample, IReadOnlyDictionary<string, string> fields,
        float[] into, int index, CancellationToken cancellationToken)
    {
        float? value;
        try
        {
            value = await function(prompt, sample.Text, sample.TokenIds, fields, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw new InvalidOperationException($"reward '{name}' failed on completion {index} (prompt \"{prompt}\", completion \"{sample.Text}\"): {e.Message}", e);
        }
        if (value is { } v && !float.IsFinite(v))
            throw new InvalidOperationException($"reward '{name}' returned {v} for completion {index} (prompt \"{prompt}\"); return a finite value or null");
        into[index] = value ?? float.NaN;
    }
}
