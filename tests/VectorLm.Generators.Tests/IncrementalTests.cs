using System.Collections;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace VectorLm.Generators.Tests;

/// <summary>
/// Caching tests in the style of NetEscapades.EnumGenerators' TestHelpers: a second run on an equal compilation, and a
/// run after an edit to an unrelated file, leave every tracked step Cached or Unchanged; the models hold no symbols,
/// syntax, locations or compilations (which would defeat caching and keep compilations alive).
/// </summary>
public sealed class IncrementalTests
{
    static readonly string[] s_trackingNames = typeof(TrackingNames).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToArray();

    const string UnrelatedFile = "Unrelated.cs";

    static (CSharpCompilation Compilation, GeneratorDriver Driver) FirstRun(out GeneratorDriverRunResult result)
    {
        var (sources, _) = GeneratorHarness.LoadCase("FineTune");
        sources.Add((UnrelatedFile, "namespace Samples.Other;\n\npublic static class Helpers\n{\n    public static int Twice(int x) => 2 * x;\n}\n"));
        var compilation = GeneratorHarness.Compile(sources);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        result = driver.GetRunResult();
        return (compilation, driver);
    }

    [Fact]
    public void Every_tracking_name_is_used_by_the_pipeline()
    {
        FirstRun(out var result);
        var steps = result.Results.Single().TrackedSteps;
        Assert.All(s_trackingNames, name => Assert.True(steps.ContainsKey(name), $"step {name} is not tracked"));
    }

    [Fact]
    public void Second_run_on_a_cloned_compilation_is_fully_cached()
    {
        var (compilation, driver) = FirstRun(out var first);
        var second = driver.RunGenerators(compilation.Clone()).GetRunResult();
        AssertCached(first, second);
    }

    [Fact]
    public void Unrelated_edit_leaves_every_step_cached()
    {
        var (compilation, driver) = FirstRun(out var first);
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == UnrelatedFile);
        var edited = old.WithChangedText(old.GetText().Replace(0, 0, "// an edit elsewhere\n"));
        var second = driver.RunGenerators(compilation.ReplaceSyntaxTree(old, edited)).GetRunResult();
        AssertCached(first, second);
    }

    [Fact]
    public void Editing_the_trainer_regenerates_it()
    {
        // The test above could pass with a pipeline that never updates: prove an edit that matters is seen.
        var (compilation, driver) = FirstRun(out _);
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == "FineTune.cs");
        var text = old.GetText().ToString().Replace("public int Steps", "public long Steps", StringComparison.Ordinal);
        var second = driver.RunGenerators(compilation.ReplaceSyntaxTree(old, old.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text)))).GetRunResult();
        var trainer = second.Results.Single().TrackedSteps[TrackingNames.Trainers];
        Assert.Contains(trainer.SelectMany(s => s.Outputs), o => o.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(second.GeneratedTrees, t => t.ToString().Contains("AddOption<long>(\"--steps\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Declaration_edit_in_another_file_is_seen_by_the_trainer_model()
    {
        // The model cache skips re-binding trainers when other files change only inside member bodies. A declaration
        // change elsewhere must still reach the model: EchoEngine stops implementing ISamplingEngine, so its Generate
        // is no longer a collective and must not be intercepted.
        var (compilation, driver) = FirstRun(out var first);
        Assert.Contains(first.GeneratedTrees, t => t.ToString().Contains("CollectiveInterceptors.Generate(", StringComparison.Ordinal));
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == "EchoEngine.cs");
        var text = old.GetText().ToString().Replace("sealed class EchoEngine : ISamplingEngine", "sealed class EchoEngine : IDisposable", StringComparison.Ordinal);
        var second = driver.RunGenerators(compilation.ReplaceSyntaxTree(old, old.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text)))).GetRunResult();
        var interceptors = second.GeneratedTrees.Single(t => t.FilePath.EndsWith("Interceptors.g.cs", StringComparison.Ordinal)).ToString();
        Assert.Contains("CollectiveInterceptors.OptimizerStep(", interceptors);
        Assert.DoesNotContain("CollectiveInterceptors.Generate(", interceptors);
    }

    [Fact]
    public void Body_edit_in_another_file_reuses_the_trainer_model()
    {
        var (compilation, driver) = FirstRun(out var first);
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == "EchoEngine.cs");
        var text = old.GetText().ToString().Replace("WeightVersion++;", "WeightVersion += 1;", StringComparison.Ordinal);
        var second = driver.RunGenerators(compilation.ReplaceSyntaxTree(old, old.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text)))).GetRunResult();
        AssertCached(first, second);
    }

    [Fact]
    public void Editing_a_helper_file_moves_its_interceptors_and_keeps_the_others()
    {
        // Call sites outside trainers are cached per file: an edit to the helper file must re-point its interceptors
        // (new positions and checksum), and the output must still compile with every call intercepted.
        var (sources, _) = GeneratorHarness.LoadCase("HelperSteps");
        var compilation = GeneratorHarness.Compile(sources);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var before = driver.GetRunResult().GeneratedTrees.Single(t => t.FilePath.EndsWith(TrainerGenerator.Interceptors.HintName, StringComparison.Ordinal)).ToString();
        var old = compilation.SyntaxTrees.Single(t => t.FilePath == "Lab.cs");
        var text = old.GetText().ToString().Replace("        optimizer.zero_grad();\n        loss.backward();\n        optimizer.step();",
            "        optimizer.zero_grad();\n        loss.backward();\n        System.Console.WriteLine();\n        optimizer.step();", StringComparison.Ordinal);
        Assert.NotEqual(old.GetText().ToString(), text);
        var edited = compilation.ReplaceSyntaxTree(old, old.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(text)));
        driver = driver.RunGeneratorsAndUpdateCompilation(edited, out var output, out _);
        var after = driver.GetRunResult().GeneratedTrees.Single(t => t.FilePath.EndsWith(TrainerGenerator.Interceptors.HintName, StringComparison.Ordinal)).ToString();
        Assert.NotEqual(before, after);
        Assert.Contains("\"BackwardAndStep\", \"Lab.cs\", 70", after, StringComparison.Ordinal);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
    }

    [Fact]
    public void Models_hold_no_symbols_syntax_locations_or_compilations()
    {
        FirstRun(out var result);
        var steps = result.Results.Single().TrackedSteps;
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var checkedValues = 0;
        foreach (var name in s_trackingNames)
            foreach (var step in steps[name])
                foreach (var (value, _) in step.Outputs)
                {
                    AssertNoBannedTypes(value, $"{name} output", visited);
                    checkedValues++;
                }
        Assert.True(checkedValues >= s_trackingNames.Length);
        // The walk must have reached the trainer model's options and interceptors, not stopped at the top.
        Assert.Contains(visited, o => o.GetType().Name == "InterceptorSpec");
        Assert.Contains(visited, o => o.GetType().Name == "OptionSpec");
    }

    static void AssertCached(GeneratorDriverRunResult first, GeneratorDriverRunResult second)
    {
        Assert.Equal(first.GeneratedTrees.Select(t => t.ToString()), second.GeneratedTrees.Select(t => t.ToString()));
        var steps = second.Results.Single().TrackedSteps;
        foreach (var name in s_trackingNames)
        {
            Assert.True(steps.ContainsKey(name), $"step {name} did not run");
            foreach (var step in steps[name])
                foreach (var (_, reason) in step.Outputs)
                    Assert.True(reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                        $"step {name} output was {reason}");
        }
    }

    static void AssertNoBannedTypes(object? value, string path, HashSet<object> visited)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum) return;
        var type = value.GetType();
        Assert.False(value is Compilation or ISymbol or SyntaxNode or Location or SemanticModel or SyntaxTree,
            $"{path} holds a {type.FullName}");
        if (!type.IsValueType && !visited.Add(value)) return;
        if (value is IEnumerable items and not string)
        {
            var i = 0;
            foreach (var item in items) AssertNoBannedTypes(item, $"{path}[{i++}]", visited);
        }
        for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
            foreach (var field in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                AssertNoBannedTypes(field.GetValue(value), $"{path}.{field.Name}", visited);
    }
}
