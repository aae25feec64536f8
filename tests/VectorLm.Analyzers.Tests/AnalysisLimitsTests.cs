using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.Collectives;
using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>The work limits: defaults, values read from .editorconfig and .globalconfig, and errors that name the key.</summary>
public class AnalysisLimitsTests
{
    // A call through an interface with two implementations, one of which performs a collective.
    const string TwoHooks = """

        interface IHook { void Run(); }
        sealed class SyncHook : IHook { public TrainerContext Ctx = null!; public void Run() => Ctx.Barrier(); }
        sealed class QuietHook : IHook { public void Run() { } }
        """;

    static readonly string Source = Body("""
        IHook h = Ask() ? new SyncHook() : new QuietHook();
        if (ctx.IsMainRank) {|VLM1001:h.Run()|};
        """) + TwoHooks;

    [Fact]
    public Task TwoDispatchTargetsAreWithinTheDefaultLimit() => Analyzer(Source);

    [Fact]
    public Task EditorConfigDispatchLimitMakesTheAnalysisGiveUp()
    {
        // With at most one target per call, the two implementations are too many: the call counts as no collective.
        var test = new AnalyzerTest { TestCode = Source.Replace("{|VLM1001:h.Run()|}", "h.Run()", StringComparison.Ordinal) };
        test.TestState.AnalyzerConfigFiles.Add(("/.editorconfig", "root = true\n\n[*.cs]\nvectorlm.analysis.max_dispatch_targets = 1\n"));
        return test.RunAsync();
    }

    [Fact]
    public Task GlobalConfigDispatchLimitMakesTheAnalysisGiveUp()
    {
        var test = new AnalyzerTest { TestCode = Source.Replace("{|VLM1001:h.Run()|}", "h.Run()", StringComparison.Ordinal) };
        test.TestState.AnalyzerConfigFiles.Add(("/.globalconfig", "is_global = true\nvectorlm.analysis.max_dispatch_targets = 1\n"));
        return test.RunAsync();
    }

    static AnalysisLimits Read(Dictionary<string, string> global, Dictionary<string, string>? file = null)
    {
        var tree = CSharpSyntaxTree.ParseText("class C { }", path: "/src/C.cs");
        var compilation = CSharpCompilation.Create("Limits", [tree]);
        var provider = new ConfigProvider(global, new Dictionary<SyntaxTree, Dictionary<string, string>> { [tree] = file ?? new() });
        return AnalysisLimits.Read(new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty, provider), compilation);
    }

    [Fact]
    public void NothingConfiguredGivesTheDefaults() => Assert.Same(AnalysisLimits.Default, Read(new()));

    [Fact]
    public void GlobalValueWinsOverTheFileValue()
    {
        var limits = Read(new() { ["vectorlm.analysis.max_taint_rounds"] = "3" },
            new() { ["vectorlm.analysis.max_taint_rounds"] = "5", ["vectorlm.analysis.max_branch_nesting"] = "2" });
        Assert.Equal(3, limits.TaintRounds);
        Assert.Equal(2, limits.BranchNesting);
        Assert.Equal(AnalysisLimits.Default.SequenceLength, limits.SequenceLength);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-4")]
    [InlineData("many")]
    [InlineData("")]
    public void ValueThatIsNotAPositiveIntegerIsAnErrorNamingTheKey(string value)
    {
        var error = Assert.Throws<InvalidOperationException>(() => Read(new() { ["vectorlm.analysis.max_sequence_rounds"] = value }));
        Assert.Contains("'vectorlm.analysis.max_sequence_rounds = " + value + "'", error.Message, StringComparison.Ordinal);
        Assert.Contains("positive integer", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownKeyIsAnErrorListingTheKnownOnes()
    {
        var error = Assert.Throws<InvalidOperationException>(() => Read(new(), new() { ["vectorlm.analysis.max_round"] = "8" }));
        Assert.Contains("'vectorlm.analysis.max_round'", error.Message, StringComparison.Ordinal);
        Assert.Contains("/src/C.cs", error.Message, StringComparison.Ordinal);
        Assert.Contains("vectorlm.analysis.max_taint_rounds", error.Message, StringComparison.Ordinal);
    }

    sealed class ConfigProvider(Dictionary<string, string> global, Dictionary<SyntaxTree, Dictionary<string, string>> files)
        : AnalyzerConfigOptionsProvider
    {
        public override AnalyzerConfigOptions GlobalOptions { get; } = new Options(global);

        public override AnalyzerConfigOptions GetOptions(SyntaxTree tree) => new Options(files.TryGetValue(tree, out var f) ? f : new());

        public override AnalyzerConfigOptions GetOptions(AdditionalText textFile) => new Options(new());
    }

    sealed class Options(Dictionary<string, string> values) : AnalyzerConfigOptions
    {
        public override bool TryGetValue(string key, [NotNullWhen(true)] out string? value) => values.TryGetValue(key, out value);

        public override IEnumerable<string> Keys => values.Keys;
    }
}
