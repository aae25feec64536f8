using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using VectorLm.Generators;

namespace VectorLm.Bench;

/// <summary>
/// Source generator cost: time per trainer class, for a project of 200 trainer classes (each with options, an
/// optimizer step and a Generate call) plus unrelated files, and the re-run after an edit to an unrelated file as a
/// ratio to the first run (goal: under 0.05). Both runs are measured side by side on the same compilations.
/// </summary>
public sealed class GeneratorBenchmark : IBenchmark
{
    public string Name => "generator";

    public string Description => "trainer generator: time per class, 200-class project, incremental re-run ratio";

    const int Repeats = 7;

    public BenchReport Run(string[] args)
    {
        var trainerCounts = args.Length > 0 ? args.Select(a => int.Parse(a, CultureInfo.InvariantCulture)).ToArray() : [1, 20, 200];
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => p.EndsWith(".dll", StringComparison.Ordinal))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
        var parseOptions = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Preview)
            .WithFeatures([new("InterceptorsNamespaces", "VectorLm.Generated")]);

        // Warm up the JIT on a small project so the first measured run is not the process's first.
        Measure(Project(5, references, parseOptions), parseOptions);

        var report = new BenchReport(Name);
        foreach (var count in trainerCounts)
        {
            var firsts = new List<double>();
            var reruns = new List<double>();
            var generatedFiles = 0;
            for (var i = 0; i < Repeats; i++)
            {
                var (first, rerun, files) = Measure(Project(count, references, parseOptions), parseOptions);
                firsts.Add(first);
                reruns.Add(rerun);
                generatedFiles = files;
            }
            var firstMs = Median(firsts);
            var rerunMs = Median(reruns);
            report.Add(
                ("trainers", count),
                ("generated_files", generatedFiles),
                ("first_run_ms", firstMs),
                ("ms_per_trainer", firstMs / count),
                ("rerun_after_unrelated_edit_ms", rerunMs),
                ("rerun_ratio", rerunMs / firstMs),
                ("goal_ratio_below", 0.05));
        }
        report.Notes.Add($"median of {Repeats} runs, each on a fresh compilation (parse excluded, binding included); " +
                         "project = N trainer files + 50 unrelated files; rerun = same driver after a one-line edit to an unrelated file");
        return report;
    }

    static (double FirstMs, double RerunMs, int Files) Measure(CSharpCompilation compilation, CSharpParseOptions parseOptions)
    {
        GeneratorDriver driver = CSharpGeneratorDriver.Create([new TrainerGenerator().AsSourceGenerator()], parseOptions: parseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: false));

        var sw = Stopwatch.StartNew();
        driver = driver.RunGenerators(compilation);
        var first = sw.Elapsed.TotalMilliseconds;
        var files = driver.GetRunResult().GeneratedTrees.Length;

        var unrelated = compilation.SyntaxTrees.First(t => t.FilePath.StartsWith("Unrelated", StringComparison.Ordinal));
        var edited = compilation.ReplaceSyntaxTree(unrelated, unrelated.WithChangedText(unrelated.GetText().Replace(0, 0, "// edit\n")));
        sw.Restart();
        driver = driver.RunGenerators(edited);
        var rerun = sw.Elapsed.TotalMilliseconds;
        if (driver.GetRunResult().GeneratedTrees.Length != files) throw new InvalidOperationException("the re-run generated a different set of files");
        return (first, rerun, files);
    }

    static CSharpCompilation Project(int trainers, ImmutableArray<MetadataReference> references, CSharpParseOptions parseOptions)
    {
        var trees = new List<SyntaxTree>();
        for (var i = 0; i < trainers; i++) trees.Add(CSharpSyntaxTree.ParseText(TrainerSource(i), parseOptions, $"Trainer{i}.cs"));
        for (var i = 0; i < 50; i++)
            trees.Add(CSharpSyntaxTree.ParseText(
                $"namespace Bench.Other;\n\npublic static class Helper{i}\n{{\n    public static int Twice(int x) => 2 * x + {i};\n}}\n",
                parseOptions, $"Unrelated{i}.cs"));
        trees.Add(CSharpSyntaxTree.ParseText("return Bench.Trainers.Trainer0.Run(args);\n", parseOptions, "Program.cs"));
        return CSharpCompilation.Create("GeneratorBench", trees, references,
            new CSharpCompilationOptions(OutputKind.ConsoleApplication, nullableContextOptions: NullableContextOptions.Enable));
    }

    static string TrainerSource(int i) => new StringBuilder()
        .Append("using System.Collections.Generic;\nusing TorchSharp;\nusing VectorLm;\nusing VectorLm.Sampling;\n\nnamespace Bench.Trainers;\n\n")
        .Append("/// <summary>Trainer number ").Append(i).Append(".</summary>\n[DistributedTrainer]\npublic partial class Trainer").Append(i).Append('\n')
        .Append("{\n    /// <summary>Steps.</summary>\n    [Option] public int Steps { get; init; } = 10;\n")
        .Append("    [Option] public double LearningRate { get; init; } = 1e-3;\n    [Option] public string[] Prompts { get; init; } = [\"hi\"];\n")
        .Append("    public ISamplingEngine? Sampler { get; init; }\n\n")
        .Append("    public void Train(TrainerContext ctx)\n    {\n        using var model = torch.nn.Linear(2, 2);\n")
        .Append("        var optimizer = torch.optim.AdamW(model.parameters(), LearningRate);\n")
        .Append("        for (var s = 0; s < Steps; s++)\n        {\n            optimizer.zero_grad();\n            optimizer.step();\n")
        .Append("            if (s % 5 == 0) Sampler?.Generate(Prompts);\n        }\n    }\n}\n")
        .ToString();

    static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
