using System.Text.Json;
using VectorLm.Sampling;

namespace VectorLm.Reinforcement;

/// <summary>
/// Appends sampled completions with their rewards as JSON lines (what TRL's <c>log_completions</c> shows): one object
/// per completion with <c>step</c>, <c>weight_version</c>, <c>prompt</c>, <c>completion</c>, <c>reward</c>,
/// <c>advantage</c> and each reward by name (null where it did not apply).
/// </summary>
public sealed class CompletionsLog : IDisposable
{
    readonly StreamWriter _writer;

    /// <summary>Opens <paramref name="path"/> for appending.</summary>
    public CompletionsLog(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read)) { AutoFlush = false };
    }

    /// <summary>Writes every completion of a rollout (prompt-major, as <see cref="RewardSet.ScoreAsync"/> orders them).</summary>
    public void Write(int step, IReadOnlyList<string> prompts, IReadOnlyList<Completion> completions, RewardScores scores, IReadOnlyList<float> advantages)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(completions);
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(advantages);
        int row = 0;
        foreach (var completion in completions)
            foreach (var sample in completion.Samples)
            {
                using var buffer = new MemoryStream();
                using (var json = new Utf8JsonWriter(buffer))
                {
                    json.WriteStartObject();
                    json.WriteNumber("step", step);
                    json.WriteNumber("weight_version", sample.WeightVersion);
                    json.WriteString("prompt", prompts[completion.PromptIndex]);
                    json.WriteString("completion", sample.Text);
                    json.WriteString("finish_reason", sample.FinishReason.ToString());
                    json.WriteNumber("reward", scores.Total[row]);
                    json.WriteNumber("advantage", advantages[row]);
                    foreach (var (name, values) in scores.PerReward)
                    {
                        if (float.IsNaN(values[row])) json.WriteNull("reward/" + name);
                        else json.WriteNumber("reward/" + name, values[row]);
                    }
                    json.WriteEndObject();
                }
                _writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
                row++;
            }
        _writer.Flush();
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _writer.Dispose();
}
