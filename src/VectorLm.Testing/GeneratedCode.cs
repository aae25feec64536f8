using System.Collections.Immutable;
using System.Globalization;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Generators;

namespace VectorLm.Testing;

/// <summary>
/// What the VectorLm source generator makes of a set of trainer sources, and what the VectorLm analyzers and the
/// compiler say about the result: run it over your <c>[DistributedTrainer]</c> classes in a unit test and compare it
/// with committed baselines (<see cref="AssertMatchesBaselines"/>), the way the VectorLm repository tests its own.
/// </summary>
/// <example>
/// <code>
/// [Fact]
/// public void Generated_code_matches_baselines() =>
///     GeneratedCode.FromProject("../MyTrainers").AssertMatchesBaselines("Baselines/MyTrainers");
/// </code>
/// </example>
public sealed class GeneratedCode
{
    /// <summary>Replaces the generator's version in generated text, so that baselines survive version bumps.</summary>
    public const string VersionPlaceholder = "%VERSION%";

    /// <summary>The file of the diagnostics in a baseline folder.</summary>
    public const string DiagnosticsFileName = "diagnostics.txt";

    static readonly string s_generatorVersion = typeof(TrainerGenerator).Assembly.GetName().Version?.ToString() ?? "0.0.0.0";

    // Every analyzer of VectorLm.Analyzers, as a build would load them from the package; found by attribute so that
    // renames inside the analyzer assembly need no change here.
    static readonly Lazy<ImmutableArray<DiagnosticAnalyzer>> s_analyzers = new(() =>
        [.. Assembly.Load(new AssemblyName("VectorLm.Analyzers")).GetTypes()
            .Where(t => !t.IsAbstract && typeof(DiagnosticAnalyzer).IsAssignableFrom(t) && t.GetCustomAttribute<DiagnosticAnalyzerAttribute>() is not null)
            .OrderBy(t => t.FullName, StringComparer.Ordinal)
            .Select(t => (DiagnosticAnalyzer)Activator.CreateInstance(t)!)]);

    GeneratedCode(Compilation compilation, IReadOnlyList<GeneratedFile> files, IReadOnlyList<Diagnostic> generatorDiagnostics, IReadOnlyList<Diagnostic> diagnostics)
    {
        Compilation = compilation;
        Files = files;
        GeneratorDiagnostics = generatorDiagnostics;
        Diagnostics = diagnostics;
    }

    /// <summary>The compilation with the generated files added (emit it to run the generated program).</summary>
    public Compilation Compilation { get; }

    /// <summary>The generated files, by hint name.</summary>
    public IReadOnlyList<GeneratedFile> Files { get; }

    /// <summary>
    /// The generator's diagnostics, the VectorLm analyzers' (VLM0001+, VLM1001+) and the compiler's warnings and errors
    /// on the generated program, sorted by file and position.
    /// </summary>
    public IReadOnlyList<Diagnostic> Diagnostics { get; }

    /// <summary>What the generator itself reported (it leaves trainer rules to the analyzers, so normally nothing).</summary>
    public IReadOnlyList<Diagnostic> GeneratorDiagnostics { get; }

    /// <summary>The file named <paramref name="hintName"/>.</summary>
    /// <exception cref="KeyNotFoundException">The generator made no such file; the message lists those it made.</exception>
    public GeneratedFile this[string hintName] => Files.FirstOrDefault(f => f.HintName == hintName)
        ?? throw new KeyNotFoundException($"No generated file '{hintName}'; the generator made: {string.Join(", ", Files.Select(f => f.HintName))}.");

    /// <summary>Runs the generator over one source text.</summary>
    /// <param name="source">The C# source of a trainer.</param>
    /// <param name="path">The file path the diagnostics and interceptor comments show.</param>
    /// <param name="options">How to compile; defaults when null.</param>
    public static GeneratedCode FromSource(string source, string path = "Trainer.cs", GeneratorRunOptions? options = null) =>
        FromSources([(path, source)], options);

    /// <summary>Runs the generator over every <c>.cs</c> file of a project folder (bin/ and obj/ left out), as a build of it would.</summary>
    /// <param name="projectDirectory">The folder: absolute, or relative to the test project's folder (<see cref="TestProject.Directory"/>).</param>
    /// <param name="options">How to compile; defaults when null.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static GeneratedCode FromProject(string projectDirectory, GeneratorRunOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(projectDirectory);
        var root = TestProject.Resolve(projectDirectory);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"The project folder '{root}' does not exist.");
        var sources = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !IsBuildOutput(Path.GetRelativePath(root, f)))
            .Order(StringComparer.Ordinal)
            .Select(f => (Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllText(f)))
            .ToList();
        if (sources.Count == 0) throw new ArgumentException($"The project folder '{root}' has no .cs files.", nameof(projectDirectory));
        return FromSources(sources, options);
    }

    static bool IsBuildOutput(string relativePath)
    {
        var first = relativePath.Split(Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar)[0];
        return first is "bin" or "obj";
    }

    /// <summary>Runs the generator over source texts, each with the path the diagnostics show.</summary>
    /// <param name="sources">(path, text) of each file.</param>
    /// <param name="options">How to compile; defaults when null.</param>
    public static GeneratedCode FromSources(IEnumerable<(string Path, string Text)> sources, GeneratorRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        options ??= new GeneratorRunOptions();
        var input = CreateCompilation(sources, options);
        var driver = CreateDriver(options).RunGeneratorsAndUpdateCompilation(input, out var output, out _);
        var run = driver.GetRunResult();
        var files = run.Results.SelectMany(r => r.GeneratedSources)
            .Select(s => new GeneratedFile(s.HintName, MaskVersion(s.SourceText.ToString())))
            .OrderBy(f => f.HintName, StringComparer.Ordinal)
            .ToList();
        var analyzers = options.RunAnalyzers ? Analyze(output, options) : [];
        var diagnostics = run.Diagnostics
            .Concat(analyzers)
            .Concat(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning))
            .OrderBy(d => d.Location.SourceTree?.FilePath ?? "", StringComparer.Ordinal)
            .ThenBy(d => d.Location.SourceSpan.Start)
            .ThenBy(d => d.Id, StringComparer.Ordinal)
            .ToList();
        return new GeneratedCode(output, files, run.Diagnostics, diagnostics);
    }

    /// <summary>
    /// Compiles <paramref name="sources"/> the way <see cref="FromSources"/> does, without running the generator (for
    /// driving it yourself, e.g. to test incremental caching).
    /// </summary>
    public static CSharpCompilation CreateCompilation(IEnumerable<(string Path, string Text)> sources, GeneratorRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        options ??= new GeneratorRunOptions();
        var parse = options.ParseOptions ?? GeneratorRunOptions.DefaultParseOptions;
        return CSharpCompilation.Create(options.AssemblyName,
            sources.Select(s => CSharpSyntaxTree.ParseText(s.Text.ReplaceLineEndings("\n"), parse, s.Path)),
            options.References ?? GeneratorRunOptions.TestProcessReferences,
            new CSharpCompilationOptions(options.OutputKind, nullableContextOptions: NullableContextOptions.Enable, deterministic: true)
                // Missing XML docs on the user's own test sources are not what a snapshot is about.
                .WithSpecificDiagnosticOptions([new("CS1591", ReportDiagnostic.Suppress)]));
    }

    /// <summary>A driver for the VectorLm generator with <paramref name="options"/>' build properties; it tracks incremental steps.</summary>
    public static GeneratorDriver CreateDriver(GeneratorRunOptions? options = null)
    {
        options ??= new GeneratorRunOptions();
        return CSharpGeneratorDriver.Create(
            [new TrainerGenerator().AsSourceGenerator()],
            parseOptions: options.ParseOptions ?? GeneratorRunOptions.DefaultParseOptions,
            optionsProvider: new BuildPropertiesProvider(options.GlobalOptions),
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: true));
    }

    /// <summary>The VectorLm analyzers' diagnostics on <paramref name="compilation"/>.</summary>
    public static ImmutableArray<Diagnostic> Analyze(Compilation compilation, GeneratorRunOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(compilation);
        options ??= new GeneratorRunOptions();
        return compilation.WithAnalyzers(s_analyzers.Value, new AnalyzerOptions([], new BuildPropertiesProvider(options.GlobalOptions)))
            .GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
    }

    /// <summary>
    /// The diagnostics as text, one per line: <c>ID Severity File(line,column): message</c>, or <c>(none)</c>. This is
    /// <see cref="DiagnosticsFileName"/> in a baseline folder.
    /// </summary>
    public string DiagnosticsText()
    {
        var lines = Diagnostics.Select(Describe).Order(StringComparer.Ordinal).ToList();
        return lines.Count == 0 ? "(none)\n" : string.Join("\n", lines) + "\n";
    }

    /// <summary>What a baseline folder holds: each generated file as <c>{HintName}.txt</c>, and <see cref="DiagnosticsFileName"/>.</summary>
    public IReadOnlyDictionary<string, string> Snapshot()
    {
        var snapshot = Files.ToDictionary(f => f.HintName + ".txt", f => f.Text, StringComparer.Ordinal);
        snapshot[DiagnosticsFileName] = DiagnosticsText();
        return snapshot;
    }

    /// <summary>
    /// Throws <see cref="BaselineMismatchException"/> with a diff when the generated files or the diagnostics differ from
    /// <paramref name="baselineDirectory"/>; with <c>VECTORLM_UPDATE_BASELINES=1</c> (or <paramref name="update"/>
    /// true) writes them there instead.
    /// </summary>
    /// <param name="baselineDirectory">Absolute, or relative to the test project's folder: baselines live beside the tests, not in bin/.</param>
    /// <param name="update">Rewrite instead of comparing; null reads <see cref="Baselines.UpdateVariable"/>.</param>
    public void AssertMatchesBaselines(string baselineDirectory, bool? update = null) =>
        Baselines.Verify(baselineDirectory, Snapshot(), update);

    static string MaskVersion(string text) => text.Replace(s_generatorVersion, VersionPlaceholder, StringComparison.Ordinal);

    static string Describe(Diagnostic d)
    {
        var span = d.Location.GetLineSpan();
        var where = d.Location == Location.None ? "(project)" : string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(span.Path)}({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1})");
        return $"{d.Id} {d.Severity} {where}: {d.GetMessage(CultureInfo.InvariantCulture)}";
    }

    sealed class BuildPropertiesProvider(IReadOnlyDictionary<string, string> values) : AnalyzerConfigOptionsProvider
    {
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Options(values);
        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => Options.Empty;
        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => Options.Empty;

        sealed class Options(IReadOnlyDictionary<string, string> values) : AnalyzerConfigOptions
        {
            public static readonly Options Empty = new(ImmutableDictionary<string, string>.Empty);
            public override bool TryGetValue(string key, out string value) => values.TryGetValue(key, out value!);

            // The analyzers enumerate the keys (to refuse unknown vectorlm.* settings); the base class throws.
            public override IEnumerable<string> Keys => values.Keys;
        }
    }
}
