using System.Globalization;
using System.Text;
using DiffPlex.DiffBuilder;
using DiffPlex.DiffBuilder.Model;

namespace VectorLm.Testing;

/// <summary>
/// Compares a set of named texts with the files of a baseline folder, as System.Text.Json's generator tests do: the
/// set of files must be equal and each text identical (line endings aside). Setting the environment variable
/// <see cref="UpdateVariable"/> to 1 rewrites the folder instead; review the change like code.
/// </summary>
public static class Baselines
{
    /// <summary>The environment variable that turns comparison into rewriting: <c>VECTORLM_UPDATE_BASELINES=1</c>.</summary>
    public const string UpdateVariable = "VECTORLM_UPDATE_BASELINES";

    /// <summary>True when <see cref="UpdateVariable"/> is 1.</summary>
    public static bool UpdateRequested => Environment.GetEnvironmentVariable(UpdateVariable) == "1";

    /// <summary>
    /// Throws <see cref="BaselineMismatchException"/> when <paramref name="actual"/> (file name to text) differs from
    /// the files in <paramref name="directory"/>; rewrites the folder instead when <paramref name="update"/> is true
    /// (by default when <see cref="UpdateVariable"/> is 1).
    /// </summary>
    /// <param name="directory">The baseline folder: absolute, or relative to the test project's folder (see <see cref="TestProject.Directory"/>).</param>
    /// <param name="actual">The texts to compare, by file name.</param>
    /// <param name="update">Rewrite instead of comparing; null reads <see cref="UpdateVariable"/>.</param>
    public static void Verify(string directory, IReadOnlyDictionary<string, string> actual, bool? update = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentNullException.ThrowIfNull(actual);
        directory = TestProject.Resolve(directory);
        if (update ?? UpdateRequested)
        {
            if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
            Directory.CreateDirectory(directory);
            foreach (var (name, text) in actual) File.WriteAllText(Path.Combine(directory, name), text);
            return;
        }
        if (Compare(directory, actual) is { } problems)
            throw new BaselineMismatchException(problems + $"\nSet {UpdateVariable}=1 and run the test again to accept the new output, then review the diff.");
    }

    /// <summary>The differences between <paramref name="actual"/> and the files in <paramref name="directory"/>, or null when there are none.</summary>
    public static string? Compare(string directory, IReadOnlyDictionary<string, string> actual)
    {
        ArgumentNullException.ThrowIfNull(actual);
        directory = TestProject.Resolve(directory);
        var folder = Path.GetFileName(Path.TrimEndingDirectorySeparator(directory));
        var expectedFiles = Directory.Exists(directory)
            ? Directory.GetFiles(directory).Select(f => Path.GetFileName(f)).ToHashSet(StringComparer.Ordinal)
            : [];
        var problems = new StringBuilder();
        foreach (var missing in actual.Keys.Where(k => !expectedFiles.Contains(k)).Order(StringComparer.Ordinal))
            problems.AppendLine($"Generated file without baseline: {folder}/{missing}");
        foreach (var extra in expectedFiles.Where(k => !actual.ContainsKey(k)).Order(StringComparer.Ordinal))
            problems.AppendLine($"Baseline without generated file: {folder}/{extra}");
        foreach (var (name, text) in actual.Where(a => expectedFiles.Contains(a.Key)).OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            var expected = File.ReadAllText(Path.Combine(directory, name)).ReplaceLineEndings("\n");
            if (expected != text.ReplaceLineEndings("\n"))
                problems.AppendLine($"{folder}/{name} differs (- baseline, + generated):").Append(UnifiedDiff(expected, text));
        }
        return problems.Length == 0 ? null : problems.ToString();
    }

    /// <summary>The changed lines of <paramref name="actual"/> against <paramref name="expected"/> with two lines of context, like <c>diff -u</c>.</summary>
    public static string UnifiedDiff(string expected, string actual)
    {
        var lines = InlineDiffBuilder.Diff(expected, actual.ReplaceLineEndings("\n"), ignoreWhiteSpace: false).Lines;
        var sb = new StringBuilder();
        for (var i = 0; i < lines.Count; i++)
        {
            var from = Math.Max(0, i - 2);
            var near = Enumerable.Range(from, Math.Min(lines.Count, i + 3) - from).Any(j => lines[j].Type != ChangeType.Unchanged);
            if (!near) continue;
            var prefix = lines[i].Type switch { ChangeType.Inserted => "+", ChangeType.Deleted => "-", _ => " " };
            sb.Append(prefix).Append(' ').Append((lines[i].Position ?? 0).ToString(CultureInfo.InvariantCulture).PadLeft(4)).Append(": ").AppendLine(lines[i].Text);
        }
        return sb.ToString();
    }
}
