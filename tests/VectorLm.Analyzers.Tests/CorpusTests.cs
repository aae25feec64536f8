using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.Collectives;
using Xunit.Abstractions;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// Measures where the deadlock analysis is unsure on a corpus of realistic training code (the FineTune sample, the
/// generator's trainer cases, and helper shapes in Corpus/): the share of collective sites it can only call "may",
/// and the share of dispatched and delegate calls where it gives up. Giving up is silent (no diagnostic), so these
/// rates are how it is kept honest; docs/rules/VLM1001.md states the blind spots and these bounds.
/// </summary>
public sealed class CorpusTests(ITestOutputHelper output)
{
    /// <summary>Bounds stated in docs/rules/VLM1001.md ("Known blind spots").</summary>
    const double MaxMayRate = 0.25, MaxGiveUpRate = 0.25;

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"VectorLm.sln not found above {AppContext.BaseDirectory}");
    }

    // One project per folder: each generator case is its own program (cases reuse type names).
    static IEnumerable<(string Name, string[] Files)> Projects()
    {
        var root = RepositoryRoot();
        yield return ("samples/FineTune", Directory.GetFiles(Path.Combine(root, "samples", "FineTune"), "*.cs"));
        yield return ("Corpus", Directory.GetFiles(Path.Combine(root, "tests", "VectorLm.Analyzers.Tests", "Corpus"), "*.cs"));
        foreach (var dir in Directory.GetDirectories(Path.Combine(root, "tests", "VectorLm.Generators.Tests", "Cases")).Order(StringComparer.Ordinal))
            yield return ("Cases/" + Path.GetFileName(dir), Directory.GetFiles(dir, "*.cs"));
    }

    static (AnalysisStats Stats, int Diagnostics) Analyse(string name, string[] files)
    {
        var parse = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Preview);
        var compilation = CSharpCompilation.Create(name.Replace('/', '_'),
            files.Order(StringComparer.Ordinal).Select(f => CSharpSyntaxTree.ParseText(File.ReadAllText(f), parse, Path.GetFileName(f))),
            Verify.References, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        var model = new CollectiveModel(compilation, new AnalyzerOptions([]));
        int diagnostics = 0;
        foreach (var type in compilation.GetSymbolsWithName(_ => true, SymbolFilter.Type).OfType<INamedTypeSymbol>())
            if (model.HasCollectives(type, default)) diagnostics += model.GetTypeAnalysis(type, default).Diagnostics.Count;
        return (model.Stats, diagnostics);
    }

    [Fact]
    public void May_and_give_up_rates_on_the_corpus_stay_within_the_documented_bounds()
    {
        int sites = 0, may = 0, calls = 0, giveUps = 0, limits = 0, projects = 0;
        foreach (var (name, files) in Projects())
        {
            var (stats, diagnostics) = Analyse(name, files);
            projects++;
            sites += stats.Sites;
            may += stats.MaySites;
            calls += stats.DispatchedCalls + stats.DelegateCalls;
            giveUps += stats.DispatchGiveUps + stats.UnknownDelegateTargets;
            limits += stats.SequenceLimits + stats.TaintRoundLimits;
            output.WriteLine($"{name}: sites {stats.Sites}, may {stats.MaySites}, dispatched {stats.DispatchedCalls}, delegates {stats.DelegateCalls}, " +
                             $"unknown delegate targets {stats.UnknownDelegateTargets}, dispatch give-ups {stats.DispatchGiveUps}, " +
                             $"sequence limits {stats.SequenceLimits}, taint round limits {stats.TaintRoundLimits}, diagnostics {diagnostics}");
        }
        double mayRate = (double)may / sites, giveUpRate = (double)giveUps / calls;
        output.WriteLine($"total over {projects} projects: may {may}/{sites} = {mayRate:P1}, give-ups {giveUps}/{calls} = {giveUpRate:P1}, work limits hit {limits}");

        // The corpus exercises what it measures: collective sites, a "may" (hooks, only one of which generates) and
        // a give-up (the caller's step delegate), so a counter that stopped counting fails here.
        Assert.True(sites >= 10, $"only {sites} collective sites in the corpus");
        Assert.True(may >= 1, "the corpus's IStepHook dispatch must count as a 'may' site");
        Assert.True(giveUps >= 1, "the corpus's step delegate parameter must count as a give-up");
        Assert.True(mayRate <= MaxMayRate, $"'may' rate {mayRate:P1} above the documented {MaxMayRate:P0}");
        Assert.True(giveUpRate <= MaxGiveUpRate, $"give-up rate {giveUpRate:P1} above the documented {MaxGiveUpRate:P0}");
        Assert.Equal(0, limits); // realistic code never hits a work limit
    }
}
