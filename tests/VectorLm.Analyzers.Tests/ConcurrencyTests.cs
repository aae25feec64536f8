using System.Collections.Immutable;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.Collectives;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// Concurrent analysis (as csc runs it) must report exactly what sequential analysis reports, and must not hang when
/// types need each other's analyses from different threads (a thread waits for a type another thread is computing,
/// unless that one waits for it).
/// </summary>
public class ConcurrencyTests
{
    // A chain of types: each one's branch depends on a rank that comes from the end of the chain, through every
    // type's summary, so each type's analysis needs the next one's, from whichever thread the driver runs it on.
    static string Chain(int types)
    {
        var s = new StringBuilder("using VectorLm;\n");
        for (int i = 0; i < types; i++)
            s.Append($$"""
                class C{{i}}
                {
                    public TrainerContext Ctx = null!;
                    {{(i + 1 < types ? $"public C{i + 1} Next = null!;" : "")}}
                    public int Rank() => {{(i + 1 < types ? "Next.Rank()" : "Ctx.Rank")}};
                    public void Go()
                    {
                        if (Rank() == 0) Ctx.Barrier();
                    }
                }

                """);
        return s.ToString();
    }

    // A ring of types that need each other's analyses (a cycle across threads), with findings that do not depend on
    // the order the cycle is broken in.
    static string Ring(int types)
    {
        var s = new StringBuilder("using VectorLm;\n");
        for (int i = 0; i < types; i++)
            s.Append($$"""
                class C{{i}}
                {
                    public TrainerContext Ctx = null!;
                    public C{{(i + 1) % types}} Next = null!;
                    public int Depth() => 1 + Next.Depth();
                    public void Go()
                    {
                        var d = Next.Depth();
                        if (Ctx.Rank == d) Ctx.Barrier();
                    }
                }

                """);
        return s.ToString();
    }

    static async Task<string[]> Findings(string source, bool concurrent)
    {
        var compilation = CSharpCompilation.Create("Ring", [CSharpSyntaxTree.ParseText(source, path: "Ring.cs")], Verify.References,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var analyzers = compilation.WithAnalyzers([new CollectiveDeadlockAnalyzer()], new CompilationWithAnalyzersOptions(
            new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty), onAnalyzerException: null, concurrentAnalysis: concurrent,
            logAnalyzerExecutionTime: false));
        var diagnostics = await analyzers.GetAnalyzerDiagnosticsAsync();
        return diagnostics.Select(d => $"{d.Id} {d.Location.GetLineSpan().StartLinePosition}").Order(StringComparer.Ordinal).ToArray();
    }

    [Theory]
    [InlineData("chain")]
    [InlineData("ring")]
    public async Task ConcurrentEqualsSequential(string shape)
    {
        const int types = 24;
        var source = shape == "chain" ? Chain(types) : Ring(types);
        var sequential = await Findings(source, concurrent: false);
        Assert.Equal(types, sequential.Count(f => f.StartsWith("VLM1001", StringComparison.Ordinal)));
        for (int run = 0; run < 3; run++)
        {
            var concurrent = Task.Run(() => Findings(source, concurrent: true));
            var finished = await Task.WhenAny(concurrent, Task.Delay(TimeSpan.FromMinutes(2)));
            Assert.True(finished == concurrent, "concurrent analysis did not finish (deadlock?)");
            Assert.Equal(sequential, await concurrent);
        }
    }
}
