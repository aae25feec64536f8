using System.ComponentModel.DataAnnotations;
using VectorLm.Hosting.CommandLine;

namespace VectorLm.Generators.Tests;

/// <summary>
/// The runtime side of option validation: the constraints the generated code passes to AddOption (the property's
/// validation attributes), checked on every value (command line, config file or default), and the launch options'
/// ranges. Each error names the option, the constraint and the value.
/// </summary>
public sealed class OptionValidationTests : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("vectorlm-validate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    static string SingleError(TrainerCommandLine cli, params string[] args) => Assert.Single(cli.Parse(args).Errors);

    [Fact]
    public void Range_refuses_a_value_outside_and_names_the_option_the_range_and_the_value()
    {
        var cli = new TrainerCommandLine("T", null);
        var steps = cli.AddOption("--steps", null, 300, new RangeAttribute(1, 100_000));

        Assert.Equal("--steps must be between 1 and 100000, got -5.", SingleError(cli, "--steps", "-5"));
        Assert.Equal(7, cli.Parse(["--steps", "7"]).GetValue(steps));
        Assert.Empty(cli.Parse(["--steps", "100000"]).Errors);
    }

    [Fact]
    public void Range_wording_follows_open_ends_and_exclusive_bounds()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--batch", null, 1, new RangeAttribute(1, int.MaxValue));
        cli.AddOption("--lr", null, 0.1, new RangeAttribute(0.0, 1.0) { MinimumIsExclusive = true });
        cli.AddOption("--drop", null, 0.0, new RangeAttribute(double.MinValue, 0.5));

        Assert.Equal("--batch must be at least 1, got 0.", SingleError(cli, "--batch", "0"));
        Assert.Equal("--lr must be greater than 0 and at most 1, got 0.", SingleError(cli, "--lr", "0"));
        Assert.Equal("--drop must be at most 0.5, got 0.75.", SingleError(cli, "--drop", "0.75"));
    }

    [Fact]
    public void A_default_that_breaks_its_constraint_is_refused_too()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--steps", null, 0, new RangeAttribute(1, 10));
        Assert.Equal("--steps must be between 1 and 10, got 0.", SingleError(cli));
    }

    [Fact]
    public void Value_constraints_apply_to_each_element_of_an_array_option()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption<int[]>("--eval-steps", null, [], new RangeAttribute(1, 100), new MinLengthAttribute(1));

        Assert.Empty(cli.Parse(["--eval-steps", "1", "50"]).Errors);
        Assert.Equal("--eval-steps must be between 1 and 100, got 500.", SingleError(cli, "--eval-steps", "1", "500"));
        Assert.Equal("--eval-steps must have at least 1 items, got 0.", SingleError(cli));
    }

    [Fact]
    public void Required_refuses_a_missing_or_empty_value_and_accepts_one_from_the_config_file()
    {
        var cli = new TrainerCommandLine("T", null);
        var model = cli.AddOption("--model", null, "", new RequiredAttribute());

        Assert.Equal("--model is required: give it on the command line or in the --config file.", SingleError(cli));
        Assert.Equal("/m", cli.Parse(["--model", "/m"]).GetValue(model));
        var config = Path.Combine(_dir, "model.yaml");
        File.WriteAllText(config, "model: /from/yaml\n");
        var parsed = cli.Parse(["--config", config]);
        Assert.Empty(parsed.Errors);
        Assert.Equal("/from/yaml", parsed.GetValue(model));
    }

    [Fact]
    public void RegularExpression_AllowedValues_and_DeniedValues_name_what_they_accept()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--run-name", null, "run", new RegularExpressionAttribute("^[a-z0-9-]+$"));
        cli.AddOption("--mode", null, "fast", new AllowedValuesAttribute("fast", "exact"));
        cli.AddOption("--device", null, "cpu", new DeniedValuesAttribute("mps"));

        Assert.Equal("--run-name must match the pattern '^[a-z0-9-]+$', got 'My Run'.", SingleError(cli, "--run-name", "My Run"));
        Assert.Equal("--mode must be one of 'fast', 'exact', got 'slow'.", SingleError(cli, "--mode", "slow"));
        Assert.Equal("--device must not be one of 'mps', got 'mps'.", SingleError(cli, "--device", "mps"));
        Assert.Empty(cli.Parse(["--run-name", "run-2", "--mode", "exact", "--device", "cuda"]).Errors);
    }

    [Fact]
    public void Length_constraints_count_characters_of_strings_and_items_of_arrays()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--tag", null, "ok", new LengthAttribute(2, 4));
        cli.AddOption<string[]>("--prompts", null, ["a"], new MaxLengthAttribute(2));
        cli.AddOption("--label", null, "abc", new StringLengthAttribute(5));

        Assert.Equal("--tag must have between 2 and 4 characters, got 5.", SingleError(cli, "--tag", "abcde"));
        Assert.Equal("--prompts must have at most 2 items, got 3.", SingleError(cli, "--prompts", "a", "b", "c"));
        Assert.Equal("--label must have at most 5 characters, got 6.", SingleError(cli, "--label", "abcdef"));
    }

    [Fact]
    public void MustExist_checks_files_folders_and_paths_and_lets_an_unset_option_pass()
    {
        var file = Path.Combine(_dir, "data.txt");
        File.WriteAllText(file, "x");
        var missing = Path.Combine(_dir, "nope");
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption<FileInfo?>("--dataset", null, null, new MustExistAttribute());
        cli.AddOption<DirectoryInfo?>("--output", null, null, new MustExistAttribute());
        cli.AddOption("--init-from", null, "", new MustExistAttribute());

        Assert.Empty(cli.Parse([]).Errors);
        Assert.Empty(cli.Parse(["--dataset", file, "--output", _dir, "--init-from", _dir]).Errors);
        Assert.Equal($"--dataset must name an existing file; '{missing}' does not exist.", SingleError(cli, "--dataset", missing));
        Assert.Equal($"--output must name an existing folder; '{file}' does not exist.", SingleError(cli, "--output", file));
        Assert.Equal($"--init-from must name an existing file or folder; '{missing}' does not exist.", SingleError(cli, "--init-from", missing));
    }

    sealed class EvenAttribute : ValidationAttribute
    {
        public override bool IsValid(object? value) => value is int i && i % 2 == 0;
        public override string FormatErrorMessage(string name) => $"{name} must be even.";
    }

    [Fact]
    public void Any_validation_attribute_works_and_a_custom_ErrorMessage_is_kept()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--heads", null, 2, new EvenAttribute());
        cli.AddOption("--layers", null, 2, new RangeAttribute(1, 8) { ErrorMessage = "{0}: pick 1 to 8 layers" });

        Assert.Equal("--heads: --heads must be even. (got 3)", SingleError(cli, "--heads", "3"));
        Assert.Equal("--layers: pick 1 to 8 layers", SingleError(cli, "--layers", "9"));
    }

    [Fact]
    public void An_attribute_that_does_not_fit_the_option_type_is_reported_on_the_first_parse()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--layers", null, 5, new MustExistAttribute());
        cli.AddOption("--name", null, "abc", new RangeAttribute(1, 10));

        var errors = cli.Parse([]).Errors;

        Assert.Contains("--layers: cannot check [MustExist] against 5: [MustExist] applies to string, FileInfo and DirectoryInfo options, not to Int32.", errors);
        Assert.Contains("--name must be between 1 and 10, got 'abc'.", errors);
    }

    [Fact]
    public void Config_file_values_go_through_the_same_constraints_and_the_error_names_the_file()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--steps", null, 300, new RangeAttribute(1, 100_000));
        var config = Path.Combine(_dir, "bad-steps.yaml");
        File.WriteAllText(config, "steps: -5\nnproc-per-node: 0\n");

        var errors = cli.Parse(["--config", config]).Errors;

        Assert.Contains($"--steps must be between 1 and 100000, got -5. (from the config file '{config}')", errors);
        Assert.Contains($"--nproc-per-node must be at least 1, got 0. (from the config file '{config}')", errors);
        Assert.Empty(cli.Parse(["--config", config, "--steps", "5", "--nproc-per-node", "1"]).Errors); // the command line wins
    }

    [Theory]
    [InlineData("--nproc-per-node 0", "--nproc-per-node must be at least 1, got 0.")]
    [InlineData("--world-size 0", "--nproc-per-node must be at least 1, got 0.")]
    [InlineData("--nnodes 0", "--nnodes must be at least 1, got 0.")]
    [InlineData("--node-rank -1", "--node-rank must be at least 0, got -1.")]
    [InlineData("--nnodes 2 --node-rank 2", "--node-rank must be less than --nnodes (2), got 2.")]
    [InlineData("--node-rank 1", "--node-rank must be less than --nnodes (1), got 1.")]
    [InlineData("--master-port 0", "--master-port must be between 1 and 65535, got 0.")]
    [InlineData("--master-port 70000", "--master-port must be between 1 and 65535, got 70000.")]
    [InlineData("--threads 0", "--threads must be at least 1, got 0.")]
    public void Launch_options_are_range_checked(string args, string error)
    {
        var cli = new TrainerCommandLine("T", null);
        Assert.Equal(error, SingleError(cli, args.Split(' ')));
    }

    [Fact]
    public void Launch_options_in_range_pass()
    {
        var cli = new TrainerCommandLine("T", null);
        var launch = cli.Parse(["--nproc-per-node", "1", "--nnodes", "3", "--node-rank", "2", "--master-port", "65535", "--threads", "1"]).Launch;
        Assert.Equal((3, 2, 65535), (launch.NNodes, launch.NodeRank, launch.MasterPort));
    }

    [Fact]
    public void Invoke_prints_the_error_and_returns_1_without_running_the_trainer()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--steps", null, 300, new RangeAttribute(1, 100_000));
        var error = new StringWriter();
        var ran = false;

        var code = cli.Invoke(["--steps", "-5"], _ => { ran = true; return 0; }, new StringWriter(), error);

        Assert.Equal(1, code);
        Assert.False(ran);
        Assert.Contains("--steps must be between 1 and 100000, got -5.", error.ToString());
        Assert.Contains("Run with --help for the options of T.", error.ToString());
    }

    [Fact]
    public void Help_states_ranges_requirements_and_allowed_values()
    {
        var cli = new TrainerCommandLine("T", null);
        cli.AddOption("--steps", "Optimizer steps.", 300, new RangeAttribute(1, 100_000));
        cli.AddOption("--model", null, "", new RequiredAttribute(), new MustExistAttribute());
        cli.AddOption("--mode", "How.", "fast", new AllowedValuesAttribute("fast", "exact"));
        var output = new StringWriter();

        Assert.Equal(0, cli.Invoke(["--help"], _ => 1, output));

        var help = output.ToString();
        Assert.Contains("Optimizer steps. (between 1 and 100000)", help);
        Assert.Contains("(required; must exist)", help);
        Assert.Contains("How. (one of 'fast', 'exact')", help);
        Assert.Contains("Ranks to run on this node, one process per device (the job has nproc-per-node x nnodes ranks). (at least 1)", help);
    }
}
