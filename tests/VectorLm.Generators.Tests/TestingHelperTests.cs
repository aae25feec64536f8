using VectorLm.Testing;

namespace VectorLm.Generators.Tests;

/// <summary>
/// VectorLm.Testing as a user meets it: run the generator over a trainer's source or project folder, get the files and
/// diagnostics, compare them with baselines (written on request, a readable diff when they differ).
/// </summary>
public sealed class TestingHelperTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("vectorlm-testing-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    const string Trainer = """
        using System.ComponentModel.DataAnnotations;
        using VectorLm;

        namespace MyLab;

        /// <summary>A user's trainer.</summary>
        [DistributedTrainer]
        public partial class MyTrainer
        {
            /// <summary>Optimizer steps.</summary>
            [Option, Range(1, 1000)] public int Steps { get; init; } = 10;

            public void Train(TrainerContext ctx)
            {
            }
        }
        """;

    [Fact]
    public void FromSource_returns_the_generated_files_and_no_diagnostics_for_a_valid_trainer()
    {
        var generated = GeneratedCode.FromSource(Trainer);

        Assert.Equal(["MyLab.MyTrainer.Trainer.g.cs", "VectorLm.EntryPoint.g.cs"], generated.Files.Select(f => f.HintName));
        Assert.Contains("AddOption<int>(\"--steps\", \"Optimizer steps.\", defaults.Steps, new global::System.ComponentModel.DataAnnotations.RangeAttribute(1, 1000))",
            generated["MyLab.MyTrainer.Trainer.g.cs"].Text);
        Assert.Contains($"\"{GeneratedCode.VersionPlaceholder}\"", generated["MyLab.MyTrainer.Trainer.g.cs"].Text);
        Assert.Empty(generated.Diagnostics);
        Assert.Equal("(none)\n", generated.DiagnosticsText());
        Assert.Throws<KeyNotFoundException>(() => generated["Nope.g.cs"]);
    }

    [Fact]
    public void A_trainer_the_analyzers_reject_gives_their_diagnostic_and_no_trainer_file()
    {
        var generated = GeneratedCode.FromSource(Trainer.Replace("public partial class", "public class", StringComparison.Ordinal));

        Assert.DoesNotContain(generated.Files, f => f.HintName.EndsWith(".Trainer.g.cs", StringComparison.Ordinal));
        var diagnostic = Assert.Single(generated.Diagnostics, d => d.Id.StartsWith("VLM", StringComparison.Ordinal));
        Assert.Contains("MyTrainer", diagnostic.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Contains(diagnostic.Id + " Error Trainer.cs(", generated.DiagnosticsText());
        Assert.Contains(generated.Diagnostics, d => d.Id == "CS5001"); // and no Main was generated, as a build would say
    }

    [Fact]
    public void Baselines_are_written_on_request_then_match_then_a_change_fails_with_a_diff()
    {
        var baselines = Path.Combine(_dir, "Baselines", "MyTrainer");
        var generated = GeneratedCode.FromSource(Trainer);

        generated.AssertMatchesBaselines(baselines, update: true);
        Assert.Equal(["MyLab.MyTrainer.Trainer.g.cs.txt", "VectorLm.EntryPoint.g.cs.txt", "diagnostics.txt"],
            Directory.GetFiles(baselines).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        generated.AssertMatchesBaselines(baselines, update: false);

        // The trainer changes: its option's range is no longer what the baseline recorded.
        var changed = GeneratedCode.FromSource(Trainer.Replace("Range(1, 1000)", "Range(1, 5000)", StringComparison.Ordinal));
        var failure = Assert.Throws<BaselineMismatchException>(() => changed.AssertMatchesBaselines(baselines, update: false));

        Assert.Contains("MyTrainer/MyLab.MyTrainer.Trainer.g.cs.txt differs", failure.Message);
        Assert.Matches(@"(?m)^- +\d+: .*RangeAttribute\(1, 1000\)", failure.Message);
        Assert.Matches(@"(?m)^\+ +\d+: .*RangeAttribute\(1, 5000\)", failure.Message);
        Assert.Contains(Baselines.UpdateVariable + "=1", failure.Message);
        Assert.DoesNotContain("EntryPoint", failure.Message); // only what differs is shown
    }

    [Fact]
    public void Missing_and_extra_baseline_files_are_named()
    {
        var baselines = Path.Combine(_dir, "Stale");
        GeneratedCode.FromSource(Trainer).AssertMatchesBaselines(baselines, update: true);
        File.Delete(Path.Combine(baselines, "VectorLm.EntryPoint.g.cs.txt"));
        File.WriteAllText(Path.Combine(baselines, "Old.g.cs.txt"), "// gone\n");

        var failure = Assert.Throws<BaselineMismatchException>(() => GeneratedCode.FromSource(Trainer).AssertMatchesBaselines(baselines, update: false));

        Assert.Contains("Generated file without baseline: Stale/VectorLm.EntryPoint.g.cs.txt", failure.Message);
        Assert.Contains("Baseline without generated file: Stale/Old.g.cs.txt", failure.Message);
    }

    [Fact]
    public void FromProject_reads_the_project_sources_and_leaves_build_output_out()
    {
        var project = Directory.CreateDirectory(Path.Combine(_dir, "MyTrainers")).FullName;
        File.WriteAllText(Path.Combine(project, "MyTrainer.cs"), Trainer);
        Directory.CreateDirectory(Path.Combine(project, "obj"));
        // A stale generated copy under obj/ would declare Run twice if it were read.
        File.WriteAllText(Path.Combine(project, "obj", "Old.g.cs"), "namespace MyLab { partial class MyTrainer { public static int Run(string[] a) => 0; } }");

        var generated = GeneratedCode.FromProject(project);

        Assert.Empty(generated.Diagnostics);
        Assert.Contains(generated.Files, f => f.HintName == "MyLab.MyTrainer.Trainer.g.cs");
        Assert.Throws<DirectoryNotFoundException>(() => GeneratedCode.FromProject(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void Relative_paths_resolve_against_the_test_project_folder()
    {
        Assert.True(File.Exists(Path.Combine(TestProject.Directory, "VectorLm.Generators.Tests.csproj")));
        Assert.Equal(Path.Combine(TestProject.Directory, "Baselines", "FineTune"), TestProject.Resolve(Path.Combine("Baselines", "FineTune")));
    }
}
