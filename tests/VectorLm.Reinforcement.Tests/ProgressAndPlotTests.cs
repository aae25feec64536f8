using System.Text.Json;
using SkiaSharp;
using VectorLm.Training;

namespace VectorLm.Reinforcement.Tests;

public class ProgressAndPlotTests
{
    [Fact]
    public void Redirected_progress_prints_plain_lines_with_step_values_throughput_and_eta()
    {
        var output = new StringWriter();
        using (var progress = new ProgressReporter("grpo", 3, isMainRank: true, new ProgressOptions { Output = output, PlainInterval = TimeSpan.Zero }))
        {
            for (int step = 1; step <= 3; step++) progress.Update(step, 100, [new("reward", 0.25 * step), new("loss", 1.5)]);
            progress.WriteLine("eval 50%");
        }
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal(4, lines.Length);
        Assert.Matches(@"^grpo step 1/3 \(33%\)  reward 0\.25  loss 1\.5  [\d,]+ tok/s  eta \d\d:\d\d:\d\d$", lines[0]);
        Assert.StartsWith("grpo step 3/3 (100%)  reward 0.75", lines[2]);
        Assert.EndsWith("eta 00:00:00", lines[2]);
        Assert.Equal("eval 50%", lines[3]);
        Assert.DoesNotContain('\u001b', output.ToString()); // no terminal escapes in a log
    }

    [Fact]
    public void Plain_lines_are_rate_limited_but_the_first_and_last_step_always_print()
    {
        var output = new StringWriter();
        var progress = new ProgressReporter("fine-tune", 50, isMainRank: true, new ProgressOptions { Output = output, PlainInterval = TimeSpan.FromHours(1) });
        for (int step = 1; step <= 50; step++) progress.Update(step, 10, [new("loss", 1)]);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith("fine-tune step 1/50", lines[0]);
        Assert.StartsWith("fine-tune step 50/50", lines[1]);
    }

    [Fact]
    public void Other_ranks_are_quiet()
    {
        var output = new StringWriter();
        var progress = new ProgressReporter("grpo", 2, isMainRank: false, new ProgressOptions { Output = output, PlainInterval = TimeSpan.Zero });
        progress.Update(1, 10, [new("loss", 1)]);
        progress.WriteLine("hello");
        Assert.Equal("", output.ToString());
    }

    [Fact]
    public void Plot_is_a_valid_png_of_the_requested_size_even_with_a_metric_without_data()
    {
        using var dir = new TestSetup.TempDir();
        var history = new MetricsHistory();
        for (int step = 1; step <= 20; step++)
            history.Add(step, [new("reward_mean", step / 20.0), new("loss", 1.0 / step), new("logprob_mismatch", double.NaN)]);
        history.Add(20, [new("eval_accuracy", 0.5)]);
        string path = dir["plots/run.png"];

        MetricsPlot.Save(path, history, ["reward_mean", "loss", "eval_accuracy", "logprob_mismatch"], width: 640, height: 480);

        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        Assert.Equal((640, 480), (bitmap.Width, bitmap.Height));
        // Something was drawn: not a blank white canvas.
        Assert.Contains(bitmap.Pixels, p => p != SKColors.White);
        Assert.False(File.Exists(path + ".tmp"));
        Assert.Empty(history.Series("logprob_mismatch")); // NaN points are gaps, not zeros
    }

    [Fact]
    public void Metrics_pairs_become_one_json_line_with_null_for_missing_values()
    {
        using var dir = new TestSetup.TempDir();
        var metrics = new GrpoMetrics
        {
            RewardMean = 0.5, RewardMeans = new Dictionary<string, double> { ["correct"] = 0.25 },
            Policy = new PolicyStatistics(0.1, 0, double.NaN, 1.2, 0.001, 1), WeightVersion = 7,
        };
        using (var writer = new MetricsWriter(dir["m.jsonl"])) writer.Write(metrics.ToPairs(3));

        using var doc = JsonDocument.Parse(File.ReadAllLines(dir["m.jsonl"]).Single());
        var root = doc.RootElement;
        string[] names = ["step", "loss", "reward_mean", "reward_std", "frac_reward_zero_std", "reward/correct", "completion_length", "clip_ratio",
            "kl", "entropy", "logprob_mismatch", "importance_ratio", "generation_seconds", "swap_seconds", "train_seconds", "weight_version"];
        Assert.Equal(names, root.EnumerateObject().Select(p => p.Name));
        Assert.Equal(3, root.GetProperty("step").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("kl").ValueKind);
        Assert.Equal(0.25, root.GetProperty("reward/correct").GetDouble());
        Assert.Equal(7, root.GetProperty("weight_version").GetInt64());
    }
}
