using System.Diagnostics;
using System.Text.Json;
using SkiaSharp;

namespace VectorLm.Reinforcement.Tests;

/// <summary>Both samples end to end at world size 2 with a shortened schedule, as separate processes (as users run them).</summary>
public class SampleRunTests
{
    static readonly string Configuration = new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name; // bin/<Configuration>/net10.0/

    static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no VectorLm.sln above {AppContext.BaseDirectory}");
    }

    static (int ExitCode, string Output) RunSample(string project, params string[] args)
    {
        string dll = Path.Combine(RepoRoot(), "samples", project, "bin", Configuration, "net10.0", project + ".dll");
        Assert.True(File.Exists(dll), $"{dll} was not built (the test project references the sample to build it first)");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(3)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{project} did not finish in 3 minutes:\n{stdout}");
        }
        return (process.ExitCode, stdout + stderr.Result);
    }

    static List<JsonElement> ReadJsonl(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList();

    static void AssertValidPng(string path)
    {
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }, bytes[..8]);
        using var bitmap = SKBitmap.Decode(bytes);
        Assert.NotNull(bitmap);
        Assert.True(bitmap.Width > 100 && bitmap.Height > 100);
    }

    [Fact]
    public void Grpo_runs_on_two_ranks_and_writes_metrics_plot_and_completions()
    {
        using var dir = new TestSetup.TempDir();
        var (code, output) = RunSample("Grpo", "--nproc-per-node", "2", "--steps", "4", "--warm-start-steps", "3", "--eval-every", "2",
            "--prompts-per-step", "4", "--group-size", "4", "--eval-prompts", "8", "--log-completions-every", "2", "--threads", "1",
            "--metrics-file", dir["metrics.jsonl"], "--plot-file", dir["plot.png"], "--completions-file", dir["completions.jsonl"]);

        Assert.True(code == 0, output); // the launcher exits 0 only when every rank did
        Assert.Contains("[rank0] grpo step 4/4", output);
        Assert.DoesNotContain("[rank1] grpo", output); // other ranks stay quiet

        var lines = ReadJsonl(dir["metrics.jsonl"]);
        Assert.Equal(5, lines.Count); // the evaluation before any GRPO step, then steps 1..4
        Assert.Equal(0, lines[0].GetProperty("step").GetInt32());
        string[] names = ["loss", "reward_mean", "reward_std", "frac_reward_zero_std", "reward/correct", "reward/format", "completion_length",
            "clip_ratio", "kl", "entropy", "logprob_mismatch", "generation_seconds", "swap_seconds", "train_seconds", "weight_version"];
        for (int step = 1; step <= 4; step++)
        {
            var line = lines[step];
            Assert.Equal(step, line.GetProperty("step").GetInt32());
            foreach (var name in names) Assert.True(line.TryGetProperty(name, out _), $"step {step} lacks {name}");
            foreach (var name in names.Where(n => n != "kl")) Assert.True(double.IsFinite(line.GetProperty(name).GetDouble()), $"step {step}: {name} is not finite");
            Assert.Equal(JsonValueKind.Null, line.GetProperty("kl").ValueKind); // beta 0: no reference model, no KL
            Assert.InRange(line.GetProperty("reward_mean").GetDouble(), 0, 1.1);
            Assert.Equal(step, line.GetProperty("weight_version").GetInt64()); // one swap per optimizer step
            Assert.Equal(step % 2 == 0, line.TryGetProperty("eval_accuracy", out _));
        }
        foreach (var line in lines.Where(l => l.TryGetProperty("eval_accuracy", out _)))
            Assert.InRange(line.GetProperty("eval_accuracy").GetDouble(), 0, 1);
        AssertValidPng(dir["plot.png"]);
        var completions = ReadJsonl(dir["completions.jsonl"]);
        Assert.Equal(2 * 4 * 4, completions.Count); // steps 2 and 4, 4 prompts x 4 samples
        Assert.All(completions, c => Assert.True(double.IsFinite(c.GetProperty("reward").GetDouble())));
    }

    [Fact]
    public void FineTune_runs_on_two_ranks_and_writes_metrics_and_plot()
    {
        using var dir = new TestSetup.TempDir();
        var (code, output) = RunSample("FineTune", "--nproc-per-node", "2", "--steps", "6", "--sample-every", "3", "--eval-prompts", "8",
            "--threads", "1", "--metrics-file", dir["metrics.jsonl"], "--plot-file", dir["plot.png"], "--save-to", dir["model"]);

        Assert.True(code == 0, output);
        Assert.Contains("[rank0] fine-tune step 6/6", output);
        Assert.DoesNotContain("[rank1] fine-tune", output);
        var lines = ReadJsonl(dir["metrics.jsonl"]);
        Assert.Equal(Enumerable.Range(1, 6), lines.Select(l => l.GetProperty("step").GetInt32()));
        Assert.All(lines, l => Assert.True(l.GetProperty("grad_norm").GetDouble() > 0, "the clipped gradient norm is logged"));
        Assert.All(lines, l => Assert.True(double.IsFinite(l.GetProperty("loss").GetDouble())));
        Assert.Equal([3, 6], lines.Where(l => l.TryGetProperty("eval_accuracy", out _)).Select(l => l.GetProperty("step").GetInt32()));
        AssertValidPng(dir["plot.png"]);
        Assert.True(File.Exists(Path.Combine(dir["model"], "config.json")));
    }
}
