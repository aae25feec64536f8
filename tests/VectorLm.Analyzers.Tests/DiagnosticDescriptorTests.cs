using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;
using VectorLm.Analyzers.Collectives;
using VectorLm.Analyzers.TrainerShape;
using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// The one descriptor table: every rule of both analyzers has its help page, its category by ID range and one row in
/// AnalyzerReleases.Unshipped.md; the deadlock rules have a certain and a probable descriptor, and each is the one
/// reported for a certain and for a probable finding.
/// </summary>
public class DiagnosticDescriptorTests
{
    static readonly DiagnosticAnalyzer[] Analyzers = [new TrainerShapeAnalyzer(), new CollectiveDeadlockAnalyzer()];

    static IEnumerable<DiagnosticDescriptor> AllDescriptors() => Analyzers.SelectMany(a => a.SupportedDiagnostics);

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln"))) return dir.FullName;
        throw new InvalidOperationException("VectorLm.sln not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public void EveryRuleHasItsHelpPageAndItsCategoryByIdRange()
    {
        var root = RepositoryRoot();
        var ids = AllDescriptors().Select(d => d.Id).Distinct().OrderBy(id => id, StringComparer.Ordinal).ToArray();
        Assert.Equal(["VLM0001", "VLM0002", "VLM0003", "VLM0004", "VLM0005", "VLM0006", "VLM0007", "VLM0008", "VLM0009",
            "VLM1001", "VLM1002", "VLM1003"], ids);
        foreach (var descriptor in AllDescriptors())
        {
            Assert.Equal(DiagnosticDescriptors.HelpLinkBase + descriptor.Id + ".md", descriptor.HelpLinkUri);
            var page = Path.Combine(root, "docs", "rules", descriptor.Id + ".md");
            Assert.True(File.Exists(page), $"missing {page}");
            var text = File.ReadAllText(page);
            Assert.StartsWith("# " + descriptor.Id + ": ", text, StringComparison.Ordinal);
            Assert.Contains("| " + descriptor.Category + " |", text, StringComparison.Ordinal);
            var expectedCategory = descriptor.Id.StartsWith("VLM0", StringComparison.Ordinal) ? DiagnosticDescriptors.Usage : DiagnosticDescriptors.Reliability;
            Assert.Equal(expectedCategory, descriptor.Category);
        }
    }

    [Fact]
    public void ReleaseTableHasOneSortedRowPerRuleInOneFormat()
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "src", "VectorLm.Analyzers", "AnalyzerReleases.Unshipped.md"));
        var rows = lines.Where(l => l.StartsWith("VLM", StringComparison.Ordinal)).ToArray();
        var byId = AllDescriptors().GroupBy(d => d.Id).OrderBy(g => g.Key, StringComparer.Ordinal).ToArray();
        Assert.Equal(byId.Length, rows.Length);
        for (int i = 0; i < rows.Length; i++)
        {
            var descriptor = byId[i].First();
            var analyzer = Analyzers.First(a => a.SupportedDiagnostics.Any(d => d.Id == descriptor.Id)).GetType().Name;
            Assert.Equal($"{descriptor.Id} | {descriptor.Category} | {descriptor.DefaultSeverity} | {analyzer}, [Documentation]({descriptor.HelpLinkUri})", rows[i]);
        }
    }

    [Theory]
    [InlineData("VLM1001")]
    [InlineData("VLM1002")]
    [InlineData("VLM1003")]
    public void DeadlockRulesHaveOneDescriptorPerCertaintyLevel(string id)
    {
        var pair = new CollectiveDeadlockAnalyzer().SupportedDiagnostics.Where(d => d.Id == id).ToArray();
        Assert.Equal(2, pair.Length);
        var certain = Assert.Single(pair, d => !d.MessageFormat.ToString().Contains("may", StringComparison.Ordinal));
        var probable = Assert.Single(pair, d => d.MessageFormat.ToString().Contains("may deadlock", StringComparison.Ordinal));
        Assert.Contains("deadlocks:", certain.MessageFormat.ToString(), StringComparison.Ordinal);
        Assert.Equal(certain.Title, probable.Title);
        Assert.Equal(certain.Category, probable.Category);
        Assert.Equal(certain.DefaultSeverity, probable.DefaultSeverity);
    }

    // A hook interface with one collective implementation: a call through it performs a collective only "maybe".
    const string Hooks = """

        interface IHook { void Run(); }
        sealed class SyncHook : IHook { public TrainerContext Ctx = null!; public void Run() => Ctx.Barrier(); }
        sealed class QuietHook : IHook { public void Run() { } }
        """;

    static DiagnosticResult Expect(DiagnosticDescriptor descriptor, params object[] arguments) =>
        new DiagnosticResult(descriptor).WithLocation(0).WithLocation(1).WithArguments(arguments);

    [Fact]
    public Task CertainBranchGetsTheCertainDescriptor() => Analyzer(Body("""
        if ({|#1:ctx.IsMainRank|}) {|#0:ctx.Barrier()|};
        """), Expect(DiagnosticDescriptors.RankConditionalCollective, "Barrier", "ctx.IsMainRank"));

    [Fact]
    public Task ProbableBranchGetsTheMaybeDescriptor() => Analyzer(Body("""
        IHook h = Ask() ? new SyncHook() : new QuietHook();
        if ({|#1:ctx.IsMainRank|}) {|#0:h.Run()|};
        """) + Hooks, Expect(DiagnosticDescriptors.MaybeRankConditionalCollective, "Run (calls Barrier) (on some targets)", "ctx.IsMainRank"));

    [Fact]
    public Task CertainLoopGetsTheCertainDescriptor() => Analyzer(Body("""
        for (int i = 0; {|#1:i < ctx.Rank|}; i++) {|#0:ctx.Barrier()|};
        """), Expect(DiagnosticDescriptors.RankDependentLoop, "Barrier", "i < ctx.Rank"));

    [Fact]
    public Task ProbableLoopGetsTheMaybeDescriptor() => Analyzer(Body("""
        IHook h = Ask() ? new SyncHook() : new QuietHook();
        for (int i = 0; {|#1:i < ctx.Rank|}; i++) {|#0:h.Run()|};
        """) + Hooks, Expect(DiagnosticDescriptors.MaybeRankDependentLoop, "Run (calls Barrier) (on some targets)", "i < ctx.Rank"));

    [Fact]
    public Task CertainEarlyExitGetsTheCertainDescriptor() => Analyzer(Body("""
        if ({|#1:ctx.Rank == 0|}) return;
        {|#0:ctx.Barrier()|};
        """), Expect(DiagnosticDescriptors.CollectiveAfterEarlyExit, "Barrier", "ctx.Rank == 0"));

    [Fact]
    public Task ProbableEarlyExitGetsTheMaybeDescriptor() => Analyzer(Body("""
        IHook h = Ask() ? new SyncHook() : new QuietHook();
        if ({|#1:ctx.Rank == 0|}) return;
        {|#0:h.Run()|};
        """) + Hooks, Expect(DiagnosticDescriptors.MaybeCollectiveAfterEarlyExit, "Run (calls Barrier) (on some targets)", "ctx.Rank == 0"));
}
