using Microsoft.CodeAnalysis;
using VectorLm.Testing;

namespace VectorLm.Generators.Tests;

/// <summary>
/// Snapshot tests in the style of System.Text.Json's generator tests, through VectorLm.Testing (what users run on their
/// own trainers): each case under Cases/{Case} generates files that must equal Baselines/{Case}/{HintName}.txt, plus
/// Baselines/{Case}/diagnostics.txt (the analyzers' and the compiler's diagnostics on the generated program). Set
/// VECTORLM_UPDATE_BASELINES=1 to rewrite the baselines, then review the diff.
/// </summary>
public sealed class SnapshotTests
{
    /// <summary>Cases that are wrong on purpose: they document what the analyzer says and that nothing is generated.</summary>
    static readonly HashSet<string> s_invalidCases = ["NotPartial"];

    public static TheoryData<string> Cases() => new(GeneratorHarness.CaseNames());

    [Fact]
    public void There_are_at_least_eight_valid_trainer_shapes() =>
        Assert.True(GeneratorHarness.CaseNames().Count(c => !s_invalidCases.Contains(c)) >= 8);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Generated_code_matches_baselines(string caseName) =>
        Generate(caseName).AssertMatchesBaselines(Path.Combine("Baselines", caseName));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Generated_program_compiles_without_warnings(string caseName)
    {
        var generated = Generate(caseName);
        Assert.Empty(generated.GeneratorDiagnostics); // the generator never reports; the analyzers do
        var problems = generated.Diagnostics.Where(d => d.Severity >= DiagnosticSeverity.Warning).ToArray();
        if (s_invalidCases.Contains(caseName))
        {
            Assert.Contains(problems, d => d.Id.StartsWith("VLM", StringComparison.Ordinal));
            Assert.DoesNotContain(generated.Files, f => f.HintName.Contains("Trainer.g.cs", StringComparison.Ordinal));
        }
        else
        {
            Assert.True(problems.Length == 0, string.Join("\n", problems.Select(d => d.ToString())));
            using var peStream = new MemoryStream();
            var emit = generated.Compilation.Emit(peStream);
            Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        }
    }

    static GeneratedCode Generate(string caseName)
    {
        var (sources, options) = GeneratorHarness.LoadCase(caseName);
        return GeneratedCode.FromSources(sources, new GeneratorRunOptions { GlobalOptions = options, AssemblyName = "TrainerCase" });
    }
}
