using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.TrainerShape;

namespace VectorLm.Generators.Tests;

/// <summary>Builds compilations of test sources against the real runtime assemblies and runs the generator on them.</summary>
internal static class GeneratorHarness
{
    /// <summary>The parse options a project consuming VectorLm gets (the package props opt into the interceptors namespace).</summary>
    public static readonly CSharpParseOptions ParseOptions = CSharpParseOptions.Default
        .WithLanguageVersion(LanguageVersion.Preview)
        .WithFeatures([new("InterceptorsNamespaces", "VectorLm.Generated")]);

    /// <summary>Every assembly this test process was given: the framework, VectorLm, TorchSharp, System.CommandLine, YamlDotNet...</summary>
    public static readonly ImmutableArray<MetadataReference> References =
        ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.Ordinal))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToImmutableArray();

    /// <summary>The test project's source folder (cases and baselines live there).</summary>
    public static string ProjectDir() => Path.Combine(RepositoryRoot(), "tests", "VectorLm.Generators.Tests");

    // Found from the test binary, not [CallerFilePath]: CI builds (ContinuousIntegrationBuild) map source paths to /_/.
    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"VectorLm.sln not found above {AppContext.BaseDirectory}");
    }

    public static CSharpCompilation Compile(IEnumerable<(string Path, string Text)> sources, OutputKind kind = OutputKind.ConsoleApplication, string assemblyName = "TrainerCase") =>
        CSharpCompilation.Create(assemblyName,
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Text, ParseOptions, s.Path)),
            References,
            new CSharpCompilationOptions(kind, nullableContextOptions: NullableContextOptions.Enable, deterministic: true)
                .WithSpecificDiagnosticOptions([new("CS1591", ReportDiagnostic.Suppress)]));

    public static GeneratorDriver CreateDriver(IReadOnlyDictionary<string, string>? globalOptions = null) =>
        CSharpGeneratorDriver.Create(
            [new TrainerGenerator().AsSourceGenerator()],
            parseOptions: ParseOptions,
            optionsProvider: new GlobalOptionsProvider(globalOptions ?? new Dictionary<string, string>()),
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));

    /// <summary>Runs the generator; returns the output compilation, its generated trees and the generator's own diagnostics.</summary>
    public static (Compilation Output, GeneratorDriverRunResult Run) Generate(Compilation input, IReadOnlyDictionary<string, string>? globalOptions = null)
    {
        var driver = CreateDriver(globalOptions).RunGeneratorsAndUpdateCompilation(input, out var output, out _);
        return (output, driver.GetRunResult());
    }

    /// <summary>The TrainerShapeAnalyzer's diagnostics on <paramref name="compilation"/>.</summary>
    public static ImmutableArray<Diagnostic> Analyze(Compilation compilation, IReadOnlyDictionary<string, string>? globalOptions = null) =>
        compilation.WithAnalyzers([new TrainerShapeAnalyzer()],
                new AnalyzerOptions([], new GlobalOptionsProvider(globalOptions ?? new Dictionary<string, string>())))
            .GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();

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

    sealed class GlobalOptionsProvider(IReadOnlyDictionary<string, string> values) : AnalyzerConfigOptionsProvider
    {
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Options(values);
        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => Options.Empty;
        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => Options.Empty;

        sealed class Options(IReadOnlyDictionary<string, string> values) : AnalyzerConfigOptions
        {
            public static readonly Options Empty = new(new Dictionary<string, string>());
            public override bool TryGetValue(string key, out string value) => values.TryGetValue(key, out value!);
        }
    }
}
