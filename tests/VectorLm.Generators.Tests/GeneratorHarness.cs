using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using VectorLm.Testing;

namespace VectorLm.Generators.Tests;

/// <summary>
/// The repository's cases (Cases/{Case}/*.cs plus an optional globalconfig.txt) and shortcuts to VectorLm.Testing, which
/// compiles them against the real runtime assemblies and runs the generator and analyzers, as it does for users.
/// </summary>
internal static class GeneratorHarness
{
    /// <summary>Every assembly this test process was given: the framework, VectorLm, TorchSharp, System.CommandLine, YamlDotNet...</summary>
    public static ImmutableArray<MetadataReference> References => GeneratorRunOptions.TestProcessReferences;

    /// <summary>The test project's source folder (cases and baselines live there).</summary>
    public static string ProjectDir() => TestProject.Directory;

    public static CSharpCompilation Compile(IEnumerable<(string Path, string Text)> sources, OutputKind kind = OutputKind.ConsoleApplication, string assemblyName = "TrainerCase") =>
        GeneratedCode.CreateCompilation(sources, new GeneratorRunOptions { OutputKind = kind, AssemblyName = assemblyName });

    public static GeneratorDriver CreateDriver(IReadOnlyDictionary<string, string>? globalOptions = null) =>
        GeneratedCode.CreateDriver(Options(globalOptions));

    /// <summary>Runs the generator; returns the output compilation and the run result.</summary>
    public static (Compilation Output, GeneratorDriverRunResult Run) Generate(Compilation input, IReadOnlyDictionary<string, string>? globalOptions = null)
    {
        var driver = CreateDriver(globalOptions).RunGeneratorsAndUpdateCompilation(input, out var output, out _);
        return (output, driver.GetRunResult());
    }

    /// <summary>The VectorLm analyzers' diagnostics on <paramref name="compilation"/>.</summary>
    public static ImmutableArray<Diagnostic> Analyze(Compilation compilation, IReadOnlyDictionary<string, string>? globalOptions = null) =>
        GeneratedCode.Analyze(compilation, Options(globalOptions));

    static GeneratorRunOptions Options(IReadOnlyDictionary<string, string>? globalOptions) =>
        globalOptions is null ? new() : new() { GlobalOptions = globalOptions };

    /// <summary>A case folder: its .cs files and its optional globalconfig.txt (key = value lines).</summary>
    public static (List<(string Path, string Text)> Sources, Dictionary<string, string> Options) LoadCase(string name)
    {
        var dir = Path.Combine(ProjectDir(), "Cases", name);
        var sources = Directory.GetFiles(dir, "*.cs").Order(StringComparer.Ordinal)
            .Select(f => (Path.GetFileName(f), File.ReadAllText(f).ReplaceLineEndings("\n"))).ToList();
        var options = new Dictionary<string, string>();
        var config = Path.Combine(dir, "globalconfig.txt");
        if (File.Exists(config))
            foreach (var line in File.ReadAllLines(config).Where(l => l.Contains('=')))
                options[line[..line.IndexOf('=')].Trim()] = line[(line.IndexOf('=') + 1)..].Trim();
        return (sources, options);
    }

    public static IEnumerable<string> CaseNames() =>
        Directory.GetDirectories(Path.Combine(ProjectDir(), "Cases")).Select(Path.GetFileName).Order(StringComparer.Ordinal)!;
}
