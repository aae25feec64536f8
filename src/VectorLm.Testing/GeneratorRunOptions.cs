using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace VectorLm.Testing;

/// <summary>How <see cref="GeneratedCode"/> compiles the trainer sources before running the generator.</summary>
public sealed record GeneratorRunOptions
{
    /// <summary>
    /// The parse options of a project that references the VectorLm package: the latest language version, and the
    /// interceptors namespace the package's build props opt into.
    /// </summary>
    public static CSharpParseOptions DefaultParseOptions { get; } = CSharpParseOptions.Default
        .WithLanguageVersion(LanguageVersion.Preview)
        .WithFeatures([new("InterceptorsNamespaces", "VectorLm.Generated")]);

    /// <summary>
    /// Every assembly the running test process was given (the framework, VectorLm, TorchSharp, your trainer project's
    /// dependencies): what a test project that references your trainer project compiles against.
    /// </summary>
    public static ImmutableArray<MetadataReference> TestProcessReferences { get; } =
        ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "").Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.Ordinal))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToImmutableArray();

    /// <summary>The references to compile against; <see cref="TestProcessReferences"/> when null.</summary>
    public IReadOnlyList<MetadataReference>? References { get; init; }

    /// <summary>
    /// MSBuild properties as the generator sees them, e.g. <c>["build_property.VectorLmTrainer"] = "Pretrain"</c> to
    /// pick the trainer whose <c>Main</c> is generated.
    /// </summary>
    public IReadOnlyDictionary<string, string> GlobalOptions { get; init; } = ImmutableDictionary<string, string>.Empty;

    /// <summary>Console application (the default) gets a generated <c>Main</c>; a library does not.</summary>
    public OutputKind OutputKind { get; init; } = OutputKind.ConsoleApplication;

    /// <summary>The assembly name of the compilation.</summary>
    public string AssemblyName { get; init; } = "Trainers";

    /// <summary>The parse options; <see cref="DefaultParseOptions"/> when null.</summary>
    public CSharpParseOptions? ParseOptions { get; init; }

    /// <summary>Whether the VectorLm analyzers (VLM0001+, VLM1001+) run on the output; true by default.</summary>
    public bool RunAnalyzers { get; init; } = true;
}
