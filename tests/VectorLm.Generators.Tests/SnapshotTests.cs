using System.Globalization;
using System.Text;
using DiffPlex.DiffBuilder;
using DiffPlex.DiffBuilder.Model;
using Microsoft.CodeAnalysis;
using Xunit.Abstractions;

namespace VectorLm.Generators.Tests;

/// <summary>
/// Snapshot tests in the style of System.Text.Json's generator tests: each case under Cases/{Case} generates files that
/// must equal Baselines/{Case}/{HintName}.txt, plus Baselines/{Case}/diagnostics.txt (the analyzer's and the compiler's
/// diagnostics on the generated program). Set VECTORLM_UPDATE_BASELINES=1 to rewrite the baselines, then review the diff.
/// </summary>
public sealed class SnapshotTests(ITestOutputHelper output)
{
    const string VersionPlaceholder = "%VERSION%";
    static readonly bool s_update = Environment.GetEnvironmentVariable("VECTORLM_UPDATE_BASELINES") == "1";

    /// <summary>Cases that are wrong on purpose: they document what the analyzer says and that nothing is generated.</summary>
    static readonly HashSet<string> s_invalidCases = ["NotPartial"];

    public static TheoryData<string> Cases() => new(GeneratorHarness.CaseNames());

    [Fact]
    public void There_are_at_least_eight_valid_trainer_shapes() =>
        Assert.True(GeneratorHarness.CaseNames().Count(c => !s_invalidCases.Contains(c)) >= 8);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Generated_code_matches_baselines(string caseName)
    {
        var (generated, diagnostics) = RunCase(caseName);
        var baselineDir = Path.Combine(GeneratorHarness.ProjectDir(), "Baselines", caseName);
        var actual = generated.ToDictionary(g => g.HintName + ".txt", g => g.Text, StringComparer.Ordinal);
        actual["diagnostics.txt"] = diagnostics;

        if (s_update)
        {
            if (Directory.Exists(baselineDir)) Directory.Delete(baselineDir, recursive: true);
            Directory.CreateDirectory(baselineDir);
            foreach (var (name, text) in actual) File.WriteAllText(Path.Combine(baselineDir, name), text);
            return;
        }

        var expectedFiles = Directory.Exists(baselineDir)
            ? Directory.GetFiles(baselineDir).Select(f => Path.GetFileName(f)).ToHashSet(StringComparer.Ordinal)
            : [];
        var problems = new StringBuilder();
        foreach (var missing in actual.Keys.Where(k => !expectedFiles.Contains(k)).Order(StringComparer.Ordinal))
            problems.AppendLine($"Generated file without baseline: Baselines/{caseName}/{missing}");
        foreach (var extra in expectedFiles.Where(k => !actual.ContainsKey(k)).Order(StringComparer.Ordinal))
            problems.AppendLine($"Baseline without generated file: Baselines/{caseName}/{extra}");
        foreach (var (name, text) in actual.Where(a => expectedFiles.Contains(a.Key)).OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            var expected = File.ReadAllText(Path.Combine(baselineDir, name)).ReplaceLineEndings("\n");
            if (expected != text) problems.AppendLine($"Baselines/{caseName}/{name} differs:").AppendLine(UnifiedDiff(expected, text));
        }
        if (problems.Length > 0)
        {
            output.WriteLine(problems.ToString());
            Assert.Fail(problems + "\nRun with VECTORLM_UPDATE_BASELINES=1 to accept the new output, then review the diff.");
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Generated_program_compiles_without_warnings(string caseName)
    {
        var (sources, options) = GeneratorHarness.LoadCase(caseName);
        var (compilation, run) = GeneratorHarness.Generate(GeneratorHarness.Compile(sources), options);
        Assert.Empty(run.Diagnostics); // the generator never reports; the analyzers do
        var problems = compilation.GetDiagnostics().Concat(GeneratorHarness.Analyze(compilation, options))
            .Where(d => d.Severity >= DiagnosticSeverity.Warning).ToArray();
        if (s_invalidCases.Contains(caseName))
        {
            Assert.Contains(problems, d => d.Id.StartsWith("VLM", StringComparison.Ordinal));
            Assert.DoesNotContain(run.GeneratedTrees, t => t.FilePath.Contains("Trainer.g.cs", StringComparison.Ordinal));
        }
        else
        {
            Assert.True(problems.Length == 0, string.Join("\n", problems.Select(d => d.ToString())));
            using var peStream = new MemoryStream();
            var emit = compilation.Emit(peStream);
            Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        }
    }

    // Generated files with the version masked, and the diagnostics as text.
    static (List<(string HintName, string Text)> Generated, string Diagnostics) RunCase(string caseName)
    {
        var (sources, options) = GeneratorHarness.LoadCase(caseName);
        var (compilation, run) = GeneratorHarness.Generate(GeneratorHarness.Compile(sources), options);
        var generated = run.Results.SelectMany(r => r.GeneratedSources)
            .Select(s => (s.HintName, s.SourceText.ToString().Replace(TrainerGenerator.Emitter.Version, VersionPlaceholder, StringComparison.Ordinal)))
            .OrderBy(g => g.HintName, StringComparer.Ordinal).ToList();
        var diagnostics = run.Diagnostics
            .Concat(GeneratorHarness.Analyze(compilation, options))
            .Concat(compilation.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning))
            .Select(Describe).Order(StringComparer.Ordinal).ToList();
        var text = diagnostics.Count == 0 ? "(none)\n" : string.Join("\n", diagnostics) + "\n";
        return (generated, text);
    }

    static string Describe(Diagnostic d)
    {
        var span = d.Location.GetLineSpan();
        var where = d.Location == Location.None ? "(project)" : string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(span.Path)}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1})");
        return $"{d.Id} {d.Severity} {where}: {d.GetMessage(CultureInfo.InvariantCulture)}";
    }

    static string UnifiedDiff(string expected, string actual)
    {
        var diff = InlineDiffBuilder.Diff(expected, actual, ignoreWhiteSpace: false);
        var sb = new StringBuilder();
        var lines = diff.Lines;
        for (var i = 0; i < lines.Count; i++)
        {
            // Show changed lines with two lines of context, like `diff -u`.
            var near = Enumerable.Range(Math.Max(0, i - 2), Math.Min(lines.Count, i + 3) - Math.Max(0, i - 2))
                .Any(j => lines[j].Type != ChangeType.Unchanged);
            if (!near) continue;
            var prefix = lines[i].Type switch { ChangeType.Inserted => "+", ChangeType.Deleted => "-", _ => " " };
            sb.Append(prefix).Append(' ').Append((lines[i].Position ?? 0).ToString(CultureInfo.InvariantCulture).PadLeft(4)).Append(": ").AppendLine(lines[i].Text);
        }
        return sb.ToString();
    }
}
