using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VectorLm.Training;

/// <summary>
/// The folders a <see cref="Trainer"/> keeps under a checkpoint root: <c>step-NNNNNNNN/</c> per checkpoint, a
/// <c>latest</c> file naming the newest, and which of them is complete.
/// </summary>
/// <remarks>
/// A checkpoint is complete when its <c>trainer_state.json</c> (written last) parses and every file it lists has the
/// listed size. Resume takes the checkpoint <c>latest</c> names when it is complete, else the newest complete one
/// (a crash between the folder's rename and the pointer's, a truncated or deleted file, a half-copied folder).
/// </remarks>
internal static partial class CheckpointLayout
{
    public const string LatestFile = "latest", StateFile = "trainer_state.json";

    public static string FolderName(int step) => string.Create(CultureInfo.InvariantCulture, $"step-{step:D8}");

    // A finished checkpoint, or one moved aside while the same step is saved again (complete, kept until replaced).
    [GeneratedRegex(@"^step-(\d{8,})(\.old)?$")]
    private static partial Regex CheckpointFolder();

    /// <summary>
    /// The folder <c>latest</c> names, or null when there is no <c>latest</c>. The name must be a checkpoint folder
    /// directly under <paramref name="root"/>: anything else (a path, <c>..</c>, an absolute path) is refused.
    /// </summary>
    /// <exception cref="InvalidDataException">The file names something other than a checkpoint folder of this root.</exception>
    public static string? LatestPointer(string root)
    {
        string latest = Path.Combine(root, LatestFile);
        if (!File.Exists(latest)) return null;
        string name = File.ReadAllText(latest).Trim();
        if (!CheckpointFolder().IsMatch(name) || name.EndsWith(".old", StringComparison.Ordinal))
            throw new InvalidDataException($"{latest} names \"{name}\"; it must name a checkpoint folder of this root (step-NNNNNNNN), not a path");
        return Path.Combine(root, name);
    }

    /// <summary>Why <paramref name="folder"/> is not a complete checkpoint, or null when it is.</summary>
    public static string? WhyIncomplete(string folder)
    {
        if (!Directory.Exists(folder)) return "the folder does not exist";
        string statePath = Path.Combine(folder, StateFile);
        if (!File.Exists(statePath)) return $"{StateFile} is missing";
        JsonObject? files;
        try
        {
            files = JsonNode.Parse(File.ReadAllText(statePath))?["files"]?.AsObject();
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException)
        {
            return $"{StateFile} is unreadable ({e.Message})";
        }
        if (files is null || files.Count == 0) return $"{StateFile} lists no files";
        foreach (var (name, size) in files)
        {
            var file = new FileInfo(Path.Combine(folder, name));
            if (!file.Exists) return $"{name} is missing";
            long expected = size?.GetValue<long>() ?? -1;
            if (file.Length != expected) return $"{name} has {file.Length} bytes, {expected} were written";
        }
        return null;
    }

    /// <summary>The sizes of the files in <paramref name="folder"/>, the list <see cref="WhyIncomplete"/> checks.</summary>
    public static JsonObject FileSizes(string folder)
    {
        var files = new JsonObject();
        foreach (var f in new DirectoryInfo(folder).EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
            files[f.Name] = f.Length;
        return files;
    }

    /// <summary>
    /// The checkpoint to resume from: the one <c>latest</c> names if complete, else the newest complete one; null when
    /// there is none. <paramref name="skipped"/> hears about every checkpoint passed over, with the reason.
    /// </summary>
    public static string? NewestComplete(string root, Action<string, string>? skipped = null)
    {
        if (!Directory.Exists(root)) return null;
        string? pointed = LatestPointer(root);
        if (pointed is not null)
        {
            string? why = WhyIncomplete(pointed);
            if (why is null) return pointed;
            skipped?.Invoke(pointed, why);
        }
        var candidates = Directory.EnumerateDirectories(root)
            .Select(d => (Path: d, Match: CheckpointFolder().Match(Path.GetFileName(d))))
            .Where(c => c.Match.Success && c.Path != pointed)
            .OrderByDescending(c => long.Parse(c.Match.Groups[1].Value, CultureInfo.InvariantCulture))
            .ThenBy(c => c.Match.Groups[2].Success) // the finished folder before the copy moved aside
            .Select(c => c.Path);
        foreach (var folder in candidates)
        {
            string? why = WhyIncomplete(folder);
            if (why is null) return folder;
            skipped?.Invoke(folder, why);
        }
        return null;
    }

    /// <summary>Step folders that are not the newest <paramref name="keep"/> (by step), to delete after a save.</summary>
    public static IEnumerable<string> BeyondNewest(string root, int keep) =>
        Directory.EnumerateDirectories(root)
            .Select(d => (Path: d, Match: CheckpointFolder().Match(Path.GetFileName(d))))
            .Where(c => c.Match.Success && !c.Match.Groups[2].Success)
            .OrderByDescending(c => long.Parse(c.Match.Groups[1].Value, CultureInfo.InvariantCulture))
            .Skip(keep)
            .Select(c => c.Path)
            .ToList();
}
