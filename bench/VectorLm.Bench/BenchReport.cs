using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace VectorLm.Bench;

/// <summary>
/// A benchmark's result: rows of named values (printed as a table) and the same rows as JSON in
/// bench/results/NAME.json, with the machine it ran on and its load average when the report was made and when it
/// was saved (a shared machine inflates every CPU figure). <see cref="Extra"/> holds non-row results.
/// </summary>
/// <param name="name">The benchmark's name (the JSON file's name).</param>
/// <param name="loadAtStart">The load average when the measuring began, if that was before the report was made (see <see cref="LoadAverage"/>).</param>
public sealed class BenchReport(string name, string? loadAtStart = null)
{
    public string Name { get; } = name;
    /// <summary>The 1-, 5- and 15-minute load averages when measuring began.</summary>
    public string LoadAtStart { get; } = loadAtStart ?? LoadAverage();
    public List<Dictionary<string, object?>> Rows { get; } = new();
    public JsonObject Extra { get; } = new();
    public List<string> Notes { get; } = new();

    /// <summary>Adds a row; keys become table columns and JSON fields, in first-seen order.</summary>
    public BenchReport Add(params (string Key, object? Value)[] values)
    {
        var row = new Dictionary<string, object?>();
        foreach (var (k, v) in values) row[k] = v;
        Rows.Add(row);
        return this;
    }

    public void Print()
    {
        var columns = Rows.SelectMany(r => r.Keys).Distinct().ToList();
        var table = new Table().Title($"[bold]{Name}[/]");
        foreach (var c in columns) table.AddColumn(new TableColumn(c).RightAligned());
        foreach (var row in Rows)
            table.AddRow(columns.Select(c => Markup.Escape(Format(row.GetValueOrDefault(c)))).ToArray());
        AnsiConsole.Write(table);
        foreach (var note in Notes) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(note)}[/]");
        AnsiConsole.MarkupLine($"[grey]load average (1, 5, 15 min): {Markup.Escape(LoadAtStart)} at start, {Markup.Escape(LoadAverage())} now[/]");
    }

    /// <summary>The 1-, 5- and 15-minute load averages from /proc/loadavg, or "unknown" where there is none.</summary>
    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (IOException) { return "unknown"; }
    }

    /// <summary>Writes bench/results/NAME.json (atomically) and returns its path.</summary>
    public string Save(string resultsDir)
    {
        Directory.CreateDirectory(resultsDir);
        var json = new JsonObject
        {
            ["benchmark"] = Name,
            ["date_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            ["machine"] = MachineInfo(),
            ["load_average"] = new JsonObject { ["start"] = LoadAtStart, ["end"] = LoadAverage() },
            ["code"] = CodeVersion(),
            ["rows"] = JsonSerializer.SerializeToNode(Rows),
        };
        foreach (var (k, v) in Extra) json[k] = v?.DeepClone();
        if (Notes.Count > 0) json["notes"] = JsonSerializer.SerializeToNode(Notes);
        string path = Path.Combine(resultsDir, Name + ".json");
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    /// <summary>
    /// The commit the benchmark was built from (<c>git describe --always --dirty</c> in the repository): results are
    /// only worth committing from committed code. "unknown" outside a git checkout (the GPU machine's carried app).
    /// </summary>
    static string CodeVersion()
    {
        try
        {
            var start = new System.Diagnostics.ProcessStartInfo("git", "describe --always --dirty --abbrev=12")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = AppContext.BaseDirectory,
            };
            using var git = System.Diagnostics.Process.Start(start)!;
            string output = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return git.ExitCode == 0 && output.Length > 0 ? output : "unknown";
        }
        catch (System.ComponentModel.Win32Exception) { return "unknown"; }   // no git on this machine
    }

    static string Format(object? v) => v switch
    {
        null => "",
        double d => d.ToString(Math.Abs(d) >= 100 ? "F1" : "G4", CultureInfo.InvariantCulture),
        float f => ((double)f).ToString(Math.Abs(f) >= 100 ? "F1" : "G4", CultureInfo.InvariantCulture),
        IFormattable x => x.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    static JsonObject MachineInfo()
    {
        string cpu = "unknown";
        try
        {
            cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))
                ?.Split(':', 2)[1].Trim() ?? cpu;
        }
        catch (IOException) { }
        return new JsonObject
        {
            ["cpu"] = cpu,
            ["logical_cores"] = Environment.ProcessorCount,
            ["os"] = RuntimeInformation.OSDescription,
            ["dotnet"] = RuntimeInformation.FrameworkDescription,
        };
    }
}
