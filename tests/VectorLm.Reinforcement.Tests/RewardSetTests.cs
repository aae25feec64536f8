using VectorLm.Sampling;

namespace VectorLm.Reinforcement.Tests;

public class RewardSetTests
{
    static Sample S(string text, params int[] ids) => new(text, ids, ids.Select(_ => -1f).ToArray(), FinishReason.EndOfSequence, 1);

    static readonly string[] Prompts = ["1+1=", "2+2="];
    static readonly Completion[] Completions = [new(0, [S("2", 52, 2), S("3", 53)]), new(1, [S("4", 54, 2), S("x", 122)])];

    [Fact]
    public void Rewards_are_weighted_and_summed_and_null_is_left_out()
    {
        var fields = new[] { new Dictionary<string, string> { ["answer"] = "2" }, new Dictionary<string, string> { ["answer"] = "4" } };
        var set = new RewardSet()
            .Add("correct", (_, text, _, f) => text == f["answer"] ? 1f : 0f)
            .Add("ends", (_, _, ids, _) => ids[^1] == 2 ? 1f : null, weight: 0.5f);

        var scores = set.Score(Prompts, Completions, fields);

        Assert.Equal([1.5f, 0f, 1.5f, 0f], scores.Total);
        Assert.Equal([1f, float.NaN, 1f, float.NaN], scores.PerReward["ends"]);
        Assert.Equal(1.0, scores.Mean("ends")); // over the completions it applied to
        Assert.Equal(0.5, scores.Mean("correct"));
        Assert.Equal(["correct", "ends"], set.Names);
    }

    [Fact]
    public async Task Async_rewards_run_concurrently_and_see_the_prompt()
    {
        int running = 0, peak = 0;
        var gate = new TaskCompletionSource();
        var set = new RewardSet().Add("slow", async (prompt, text, _, _, ct) =>
        {
            int now = Interlocked.Increment(ref running);
            InterlockedMax(ref peak, now);
            if (now == 4) gate.TrySetResult(); // all four calls are in flight at once
            await gate.Task.WaitAsync(TimeSpan.FromSeconds(30), ct);
            Interlocked.Decrement(ref running);
            return prompt.Length + text.Length;
        });

        var scores = await set.ScoreAsync(Prompts, Completions);

        Assert.Equal(4, peak);
        Assert.Equal([5f, 5f, 5f, 5f], scores.Total);
    }

    [Fact]
    public void A_failing_or_non_finite_reward_names_itself_and_the_completion()
    {
        var throwing = new RewardSet().Add("parser", (_, text, _, _) => text == "x" ? throw new FormatException("bad") : 0f);
        var e = Assert.Throws<InvalidOperationException>(() => throwing.Score(Prompts, Completions));
        Assert.Contains("reward 'parser' failed on completion 3", e.Message);

        var infinite = new RewardSet().Add("ratio", (_, _, _, _) => float.PositiveInfinity);
        Assert.Contains("'ratio' returned", Assert.Throws<InvalidOperationException>(() => infinite.Score(Prompts, Completions)).Message);
        Assert.Throws<ArgumentException>(() => new RewardSet().Add("a", (_, _, _, _) => 0f).Add("a", (_, _, _, _) => 1f));
    }

    static void InterlockedMax(ref int target, int value)
    {
        int current;
        while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current) { }
    }
}
