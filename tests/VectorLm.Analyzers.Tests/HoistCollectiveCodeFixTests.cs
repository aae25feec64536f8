using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>The VLM1001 fix that moves a collective out of a rank-conditional <c>if</c>.</summary>
public class HoistCollectiveCodeFixTests
{
    [Fact]
    public Task HoistsBarrierAndRemovesEmptyIf() => CodeFix(
        Body("""
                    if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|};
                    Save();
            """),
        Body("""
                    ctx.Barrier();
                    Save();
            """));

    [Fact]
    public Task HoistsGenerateAssignmentAndKeepsTheRest() => CodeFix(
        Body("""
                    IReadOnlyList<Completion>? x = null;
                    if (ctx.IsMainRank)
                    {
                        x = {|VLM1001:sampler.Generate(p)|};
                        Log();
                    }
            """),
        Body("""
                    IReadOnlyList<Completion>? x = null;
                    x = sampler.Generate(p);
                    if (ctx.IsMainRank)
                    {
                        Log();
                    }
            """));

    [Fact]
    public Task FixAllHoistsEveryFlaggedStatement() => CodeFix(
        Body("""
                    IReadOnlyList<Completion>? x = null;
                    if (ctx.IsMainRank)
                    {
                        {|VLM1001:ctx.Barrier()|};
                        x = {|VLM1001:sampler.Generate(p)|};
                    }
                    if (ctx.Rank == 0) {|VLM1001:ctx.Barrier()|};
            """),
        Body("""
                    IReadOnlyList<Completion>? x = null;
                    ctx.Barrier();
                    x = sampler.Generate(p);
                    ctx.Barrier();
            """),
        iterations: 3);

    [Fact]
    public Task NoFixWhenTheCallUsesALocalOfTheBranch() => CodeFix(
        Body("""
                    if (ctx.IsMainRank)
                    {
                        var q = new[] { "x" };
                        var r = {|VLM1001:sampler.Generate(q)|};
                    }
            """),
        Body("""
                    if (ctx.IsMainRank)
                    {
                        var q = new[] { "x" };
                        var r = {|VLM1001:sampler.Generate(q)|};
                    }
            """));
}
