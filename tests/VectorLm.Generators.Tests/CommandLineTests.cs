using VectorLm.Hosting.CommandLine;

namespace VectorLm.Generators.Tests;

/// <summary>The runtime side of the generated command line: types, launch options, YAML config, help.</summary>
public sealed class CommandLineTests : IDisposable
{
    enum Color { Red, Green }

    readonly string _dir = Directory.CreateTempSubdirectory("vectorlm-cli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Every_supported_option_type_parses()
    {
        var cli = new TrainerCommandLine("Types", null);
        var s = cli.AddOption<string>("--s", null, "x");
        var b = cli.AddOption<bool>("--b", null, false);
        var by = cli.AddOption<byte>("--by", null, 1);
        var sh = cli.AddOption<short>("--sh", null, 2);
        var i = cli.AddOption<int>("--i", null, 3);
        var ni = cli.AddOption<int?>("--ni", null, null);
        var l = cli.AddOption<long>("--l", null, 4);
        var f = cli.AddOption<float>("--f", null, 0.5f);
        var d = cli.AddOption<double>("--d", null, 0.25);
        var m = cli.AddOption<decimal>("--m", null, 1.5m);
        var nm = cli.AddOption<decimal?>("--nm", null, null);
        var ts = cli.AddOption<TimeSpan>("--ts", null, TimeSpan.Zero);
        var fi = cli.AddOption<FileInfo?>("--fi", null, null);
        var di = cli.AddOption<DirectoryInfo?>("--di", null, null);
        var e = cli.AddOption<Color>("--e", null, Color.Red);
        var ne = cli.AddOption<Color?>("--ne", null, null);
        var sa = cli.AddOption<string[]>("--sa", null, []);
        var ia = cli.AddOption<int[]>("--ia", null, []);

        var parsed = cli.Parse(["--s", "hello", "--b", "--by", "7", "--sh", "-3", "--i", "42", "--ni", "5", "--l", "9000000000",
            "--f", "1.5", "--d", "2.5e-3", "--m", "3.25", "--nm", "4.5", "--ts", "00:10:00", 
            "--fi", "data.txt", "--di", "out", "--e", "Green", "--ne", "Red", "--sa", "a", "b", "--ia", "1", "--ia", "2"]);

        Assert.Empty(parsed.Errors);
        Assert.Equal("hello", parsed.GetValue(s));
        Assert.True(parsed.GetValue(b));
        Assert.Equal((byte)7, parsed.GetValue(by));
        Assert.Equal((short)-3, parsed.GetValue(sh));
        Assert.Equal(42, parsed.GetValue(i));
        Assert.Equal(5, parsed.GetValue(ni));
        Assert.Equal(9_000_000_000L, parsed.GetValue(l));
        Assert.Equal(1.5f, parsed.GetValue(f));
        Assert.Equal(2.5e-3, parsed.GetValue(d));
        Assert.Equal(3.25m, parsed.GetValue(m));
        Assert.Equal(4.5m, parsed.GetValue(nm));
        Assert.Equal(TimeSpan.FromMinutes(10), parsed.GetValue(ts));
        Assert.Equal("data.txt", parsed.GetValue(fi)!.Name);
        Assert.Equal("out", parsed.GetValue(di)!.Name);
        Assert.Equal(Color.Green, parsed.GetValue(e));
        Assert.Equal(Color.Red, parsed.GetValue(ne));
        Assert.Equal(["a", "b"], parsed.GetValue(sa)!);
        Assert.Equal([1, 2], parsed.GetValue(ia)!);
    }

    [Fact]
    public void Defaults_apply_when_nothing_is_given()
    {
        var cli = new TrainerCommandLine("Defaults", null);
        var steps = cli.AddOption("--steps", null, 200);
        var parsed = cli.Parse([]);
        Assert.Equal(200, parsed.GetValue(steps));
        Assert.Equal(new VectorLm.Hosting.LaunchOptions(), parsed.Launch);
    }

    [Fact]
    public void Launch_options_parse()
    {
        var cli = new TrainerCommandLine("Launch", null);
        var launch = cli.Parse(["--nproc-per-node", "2", "--backend", "tcp", "--master-addr", "10.0.0.1",
            "--master-port", "29500", "--nnodes", "2", "--node-rank", "1", "--seed", "7", "--threads", "3"]).Launch;
        Assert.Equal(new VectorLm.Hosting.LaunchOptions
        {
            NProcPerNode = 2, Backend = DistributedBackend.Tcp, MasterAddr = "10.0.0.1", MasterPort = 29500, NNodes = 2, NodeRank = 1, Seed = 7, Threads = 3,
        }, launch);
        Assert.NotEmpty(cli.Parse(["--backend", "mpi"]).Errors);
    }

    [Fact]
    public void Yaml_config_fills_options_and_the_command_line_wins()
    {
        var cli = new TrainerCommandLine("Yaml", null);
        var steps = cli.AddOption("--steps", null, 200);
        var lr = cli.AddOption("--learning-rate", null, 0.1);
        var prompts = cli.AddOption<string[]>("--prompts", null, []);
        var compile = cli.AddOption("--compile", null, false);
        var config = Path.Combine(_dir, "run.yaml");
        File.WriteAllText(config, "steps: 50\nlearning-rate: 0.003\nprompts: [a, 'b c']\ncompile: true\nworld-size: 2\nseed: 11\n");

        var parsed = cli.Parse(["--config", config, "--steps", "7", "--seed", "3"]);

        Assert.Empty(parsed.Errors);
        Assert.Equal(7, parsed.GetValue(steps));
        Assert.Equal(0.003, parsed.GetValue(lr));
        Assert.Equal(["a", "b c"], parsed.GetValue(prompts)!);
        Assert.True(parsed.GetValue(compile));
        var launch = parsed.Launch;
        Assert.Equal(2, launch.NProcPerNode);
        Assert.Equal(3, launch.Seed);
    }

    [Fact]
    public void Yaml_config_with_an_unknown_key_names_the_key_and_the_file()
    {
        var cli = new TrainerCommandLine("Yaml", null);
        cli.AddOption("--steps", null, 200);
        var config = Path.Combine(_dir, "bad.yaml");
        File.WriteAllText(config, "stepz: 5\n");
        var error = Assert.Single(cli.Parse(["--config", config]).Errors);
        Assert.Contains("'stepz'", error);
        Assert.Contains(config, error);
        Assert.Contains("steps", error);
    }

    [Fact]
    public void Yaml_config_with_a_bad_value_is_a_parse_error()
    {
        var cli = new TrainerCommandLine("Yaml", null);
        cli.AddOption("--steps", null, 200);
        var config = Path.Combine(_dir, "value.yaml");
        File.WriteAllText(config, "steps: many\n");
        var parsed = cli.Parse(["--config", config]);
        Assert.Contains(parsed.Errors, e => e.Contains("many", StringComparison.Ordinal));
    }

    [Fact]
    public void Yaml_config_that_is_not_a_mapping_is_rejected()
    {
        Assert.Throws<YamlConfigException>(() => YamlConfigFile.Parse(new StringReader("- a\n- b\n")));
        Assert.Throws<YamlConfigException>(() => YamlConfigFile.Parse(new StringReader("a: {b: 1}\n")));
        Assert.Throws<YamlConfigException>(() => YamlConfigFile.Parse(new StringReader("a: 1\na: 2\n")));
        Assert.Empty(YamlConfigFile.Parse(new StringReader("")));
        Assert.Equal("null", YamlConfigFile.Parse(new StringReader("tag: 'null'\n"))[0].Value[0]);
        Assert.Empty(YamlConfigFile.Parse(new StringReader("tag: ~\n"))[0].Value);
    }

    [Fact]
    public void Help_lists_launch_and_trainer_options()
    {
        var cli = new TrainerCommandLine("HelpMe", "Trains something.");
        cli.AddOption("--sample-every", "Sample every this many steps.", 20);
        var output = new StringWriter();
        var code = cli.Invoke(["--help"], _ => throw new InvalidOperationException("help does not run the trainer"), output);
        var help = output.ToString();
        Assert.Equal(0, code);
        foreach (var name in new[] { "--nproc-per-node", "--world-size", "--backend", "--master-addr", "--master-port", "--nnodes", "--node-rank", "--seed",
                     "--threads", "--config", "--sample-every", "Sample every this many steps.", "Trains something.", "default: 20" })
            Assert.Contains(name, help);
    }

    [Fact]
    public void Duplicate_or_reserved_option_names_are_rejected()
    {
        var cli = new TrainerCommandLine("Dup", null);
        cli.AddOption("--steps", null, 1);
        Assert.Throws<ArgumentException>(() => cli.AddOption("--steps", null, 2));
        Assert.Throws<ArgumentException>(() => cli.AddOption("--seed", null, 2));
        Assert.Throws<ArgumentException>(() => cli.AddOption("--world-size", null, 2)); // an alias of --nproc-per-node
        Assert.Throws<ArgumentException>(() => cli.AddOption("steps2", null, 2));
    }
}
