using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.TrainerShape;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// VLM0009 for a bare method group: the trainer-shape analyzer binds a bare <c>step</c>, <c>Generate</c> or clip name
/// only where a method of that name can be in scope (a using static, or the enclosing types), so a training loop's
/// <c>step</c> variable costs nothing, and a clip brought in by <c>using static</c> is still reported.
/// </summary>
public class MethodGroupTests
{
    static async Task<string[]> Vlm0009(params string[] sources)
    {
        var compilation = CSharpCompilation.Create("Groups", sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, path: $"F{i}.cs")),
            Verify.References, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary));
        Assert.Empty(compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var diagnostics = await compilation.WithAnalyzers([new TrainerShapeAnalyzer()]).GetAnalyzerDiagnosticsAsync();
        return diagnostics.Where(d => d.Id == "VLM0009").Select(d => d.Location.SourceTree!.GetText().ToString(d.Location.SourceSpan)).ToArray();
    }

    const string Clipping = """
        using System;
        using System.Collections.Generic;
        public static class Clipping
        {
            public static double Run(TorchSharp.torch.nn.Module model, int step)
            {
                Func<IEnumerable<TorchSharp.Modules.Parameter>, double, double, double> clip = clip_grad_norm_;
                return clip(model.parameters(), 1.0, 2.0) + step;
            }
        }
        """;

    [Fact]
    public async Task BareClipThroughUsingStatic() =>
        Assert.Equal(["clip_grad_norm_"], await Vlm0009("using static TorchSharp.torch.nn.utils;\n" + Clipping));

    [Fact]
    public async Task BareClipThroughGlobalUsingStatic() =>
        Assert.Equal(["clip_grad_norm_"], await Vlm0009(Clipping, "global using static TorchSharp.torch.nn.utils;"));

    [Fact]
    public async Task StepVariableIsNoMethodGroup() => Assert.Empty(await Vlm0009("""
        public static class Loop
        {
            public static int Run(int step) { var next = step + 1; return step * next; }
        }
        """));
}
