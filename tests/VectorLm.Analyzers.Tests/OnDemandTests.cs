using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// What the deadlock analysis leaves out until asked: members whose syntax names nothing that can lead to a collective
/// (the <c>CollectiveNames</c> closure over the compilation's own members), and private helpers that neither reach a
/// collective nor write class-wide state, bound only when a caller's taint pass needs their summary. Leaving them out
/// must never lose a finding. No <c>using static</c> here: a file with one makes every helper count as a writer.
/// </summary>
public class OnDemandTests
{
    const string Usings = """
        using System;
        using VectorLm;

        """;

    [Fact]
    public Task RankFromAPrivateHelperThatWritesNothing() => Analyzer(Usings + """
        class Subject
        {
            TrainerContext ctx = null!;
            bool Lead() => ctx.Rank == 0;
            void Run()
            {
                if (Lead()) {|VLM1001:ctx.Barrier()|};
            }
        }
        """);

    [Fact]
    public Task RankThroughTwoPrivateHelpers() => Analyzer(Usings + """
        class Subject
        {
            TrainerContext ctx = null!;
            int Scaled(int r) => Half(r) * 4;
            int Half(int r) { var h = r; h /= 2; return h; }
            void Run()
            {
                if (Scaled(ctx.Rank) > 0) {|VLM1001:ctx.Barrier()|};
            }
        }
        """);

    [Fact]
    public Task CollectiveThroughAChainOfHelpers() => Analyzer(Usings + """
        class Subject
        {
            TrainerContext ctx = null!;
            void Inner() => ctx.Barrier();
            void Middle() => Inner();
            void Outer() { Console.WriteLine(); Middle(); }
            void Run()
            {
                if (ctx.IsMainRank) {|VLM1001:Outer()|};
            }
        }
        """);

    [Fact]
    public Task PrivateHelperWritingAField() => Analyzer(Usings + """
        class Subject
        {
            TrainerContext ctx = null!;
            bool _lead;
            void Remember() { _lead = ctx.IsMainRank; }
            void Run()
            {
                Remember();
                if (_lead) {|VLM1001:ctx.Barrier()|};
            }
        }
        """);

    [Fact]
    public Task PrivateHelperFillingAFieldCollection() => Analyzer(Usings + """
        class Subject
        {
            TrainerContext ctx = null!;
            readonly System.Collections.Generic.List<int> _ranks = new();
            void Note() { _ranks.Add(ctx.Rank); }
            void Run()
            {
                Note();
                if (_ranks[0] == 0) {|VLM1001:ctx.Barrier()|};
            }
        }
        """);

    [Fact]
    public Task HelpersThatReachNothingReportNothing() => Analyzer(Usings + """
        class Subject
        {
            TrainerContext ctx = null!;
            void Log(int r) { if (r == 0) Console.WriteLine(r); }
            void Twice() { Log(ctx.Rank); Log(ctx.Rank); }
            void Run()
            {
                if (ctx.IsMainRank) Twice();
                ctx.Barrier();
            }
        }
        """);

    // A helper run only through a delegate is never asked for its summary: its writes must make it analysed anyway.
    const string WriterRunThroughADelegate = """
        class Subject
        {
            TrainerContext ctx = null!;
            void Note() { Lead = ctx.IsMainRank; }
            void Run()
            {
                Action note = Note;
                note();
                if (Lead) {|VLM1001:ctx.Barrier()|};
            }
        }
        static class Shared { public static bool Lead; }
        """;

    [Fact]
    public Task UsingStaticMakesBareNamesWrites() => Analyzer(Usings + "using static Shared;\n" + WriterRunThroughADelegate);

    [Fact]
    public Task GlobalUsingStaticMakesBareNamesWrites()
    {
        var test = new AnalyzerTest { TestCode = Usings + WriterRunThroughADelegate };
        test.TestState.Sources.Add(("Usings.cs", "global using static Shared;"));
        return test.RunAsync();
    }
}
