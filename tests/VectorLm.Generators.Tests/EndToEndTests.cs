using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;

namespace VectorLm.Generators.Tests;

/// <summary>
/// The FineTune-shaped case, compiled with its generated code and run in this process on CPU (world size 1): the
/// generated Run parses the options, the host runs Train, and the interceptors turn each optimizer.step() into a
/// collective step that marks the sampler stale and each Generate into sync-then-generate.
/// </summary>
public sealed class EndToEndTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("vectorlm-e2e-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static readonly Lazy<Assembly> s_fineTune = new(() =>
    {
        var (sources, _) = GeneratorHarness.LoadCase("FineTune");
        var (compilation, _) = GeneratorHarness.Generate(GeneratorHarness.Compile(sources, assemblyName: "FineTuneE2E"));
        using var pe = new MemoryStream();
        var emit = compilation.Emit(pe);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        pe.Position = 0;
        return new AssemblyLoadContext("FineTuneE2E").LoadFromStream(pe);
    });

    static int Run(params string[] args)
    {
        var run = s_fineTune.Value.GetType("Samples.FineTuning.FineTune")!.GetMethod("Run", BindingFlags.Public | BindingFlags.Static)!;
        return (int)run.Invoke(null, [args])!;
    }

    [Fact]
    public void FineTune_runs_with_world_size_1_and_the_interceptors_sync_the_sampler()
    {
        var report = Path.Combine(_dir, "report.txt");
        const int steps = 6, sampleEvery = 2;

        var code = Run("--steps", steps.ToString(), "--sample-every", sampleEvery.ToString(), "--report", report, "--world-size", "1");

        Assert.Equal(0, code);
        var lines = File.ReadAllLines(report);
        Assert.Equal(steps / sampleEvery, lines.Length);
        for (var i = 0; i < lines.Length; i++)
        {
            var step = (i + 1) * sampleEvery;
            // Each step() marked the sampler stale; the intercepted Generate synced it first, so the weight version
            // counts the sampling points. Without the interceptors it would stay v0.
            Assert.StartsWith($"rank 0 step {step}: hello from Train:", lines[i], StringComparison.Ordinal);
            Assert.EndsWith($" v{i + 1}", lines[i], StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Config_file_values_reach_the_trainer()
    {
        var report = Path.Combine(_dir, "from-config.txt");
        var config = Path.Combine(_dir, "run.yaml");
        File.WriteAllText(config, $"steps: 3\nsample-every: 1\nreport: '{report}'\n");

        Assert.Equal(0, Run("--config", config, "--steps", "2"));

        Assert.Equal(2, File.ReadAllLines(report).Length); // the command line's --steps 2 wins over the file's 3
    }

    [Fact]
    public void Bad_option_value_fails_with_exit_code_1()
    {
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            Assert.Equal(1, Run("--steps", "many"));
        }
        finally
        {
            Console.SetError(previous);
        }
        Assert.Contains("many", error.ToString());
    }

    [Fact]
    public void Out_of_range_option_is_refused_before_training_with_the_option_and_its_range()
    {
        var report = Path.Combine(_dir, "never.txt");
        var (code, error) = RunCapturingErrors("--steps", "-5", "--report", report);

        Assert.Equal(1, code);
        Assert.Contains("--steps must be between 1 and 100000, got -5.", error);
        Assert.False(File.Exists(report)); // Train never ran
    }

    [Fact]
    public void Out_of_range_config_value_is_refused_with_the_file_named()
    {
        var config = Path.Combine(_dir, "zero.yaml");
        File.WriteAllText(config, "sample-every: 0\n");

        var (code, error) = RunCapturingErrors("--config", config);

        Assert.Equal(1, code);
        Assert.Contains($"--sample-every must be at least 1, got 0. (from the config file '{config}')", error);
    }

    static readonly Lazy<Assembly> s_validated = new(() =>
    {
        var (sources, _) = GeneratorHarness.LoadCase("ValidatedOptions");
        var (compilation, _) = GeneratorHarness.Generate(GeneratorHarness.Compile(sources, assemblyName: "ValidatedE2E"));
        using var pe = new MemoryStream();
        var emit = compilation.Emit(pe);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        pe.Position = 0;
        return new AssemblyLoadContext("ValidatedE2E").LoadFromStream(pe);
    });

    [Fact]
    public void Generated_constraints_keep_the_attribute_arguments_the_user_wrote()
    {
        var run = s_validated.Value.GetType("Samples.Validated.ValidatedOptions")!.GetMethod("Run", BindingFlags.Public | BindingFlags.Static)!;
        (int Code, string Error) Validated(params string[] args) => RunCapturingErrors(() => (int)run.Invoke(null, [args])!);

        Assert.Equal(0, Validated("--model", _dir).Code);
        var (code, error) = Validated("--tokens", "5000000001", "--price", "10", "--heads", "3", "--eval-steps", "5", "2000",
            "--checkpoint-every", "02:00:00", "--fraction", "0", "--odd", "7");
        Assert.Equal(1, code);
        Assert.Contains("--model is required", error);                                   // [Required] on a "" default
        Assert.Contains("--tokens must be between 1 and 5000000000, got 5000000001.", error); // long bounds kept (as double)
        Assert.Contains("--price must be between 0.01 and 9.99, got 10.", error);          // [Range(typeof(decimal), ...)]
        Assert.Contains("--heads: The field --heads is invalid. (got 3)", error);          // the user's own attribute
        Assert.Contains("--eval-steps must be between 1 and 1000, got 2000.", error);      // per element of an array
        Assert.Contains("--checkpoint-every must be between 00:00:01 and 01:00:00, got 02:00:00.", error);
        Assert.Contains("--fraction is a fraction in (0, 1]", error);                     // the user's ErrorMessage
        // [AllowedValues(-3, (short)-3, ..., 7u, ...)]: each value keeps its type, and DataAnnotations compares with
        // Equals, so the int 7 is not the uint 7 (docs/generator.md says to write values in the option's type).
        Assert.Contains("--odd must be one of -3, -3, -1, 7, 9, 2, Infinity, NaN, -2.5, System.Int32, [1, 2], got 7.", error);
    }

    static (int Code, string Error) RunCapturingErrors(params string[] args) => RunCapturingErrors(() => Run(args));

    static (int Code, string Error) RunCapturingErrors(Func<int> run)
    {
        var error = new StringWriter();
        var previous = Console.Error;
        Console.SetError(error);
        try
        {
            return (run(), error.ToString());
        }
        finally
        {
            Console.SetError(previous);
        }
    }
}
