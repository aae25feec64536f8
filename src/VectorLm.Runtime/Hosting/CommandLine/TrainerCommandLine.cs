using System.CommandLine;
using System.CommandLine.Invocation;
using System.CommandLine.Parsing;
using System.ComponentModel;
using System.ComponentModel.DataAnnotations;

namespace VectorLm.Hosting.CommandLine;

/// <summary>
/// The command line of a generated <c>[DistributedTrainer]</c> entry point: the launch options every trainer accepts
/// (<c>--nproc-per-node</c>, <c>--backend</c>, <c>--master-addr</c>, <c>--master-port</c>, <c>--nnodes</c>,
/// <c>--node-rank</c>, <c>--seed</c>, <c>--threads</c>, <c>--precision</c>), <c>--config file.yaml</c>, and one option per
/// <c>[Option]</c> property, added by the generated code with <see cref="AddOption{T}"/>. Only generated code and tests use it.
/// </summary>
/// <remarks>
/// Values come from, in order of precedence: the command line, the YAML file named by <c>--config</c> (keys equal
/// option names without dashes), the property initializer. YAML values are turned into command-line tokens and parsed
/// by the same options, so both sources accept the same syntax and report the same errors, validation included: the
/// final value of every option, a default too, must satisfy the <see cref="ValidationAttribute"/>s of its property.
/// System.CommandLine does the parsing and stays an implementation detail: the public surface is
/// <see cref="TrainerOption{T}"/> and <see cref="TrainerArguments"/>.
/// </remarks>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class TrainerCommandLine
{
    readonly RootCommand _root;
    readonly Option<int> _nprocPerNode;
    readonly Option<string> _backend;
    readonly Option<string?> _masterAddr;
    readonly Option<int?> _masterPort;
    readonly Option<int> _nnodes;
    readonly Option<int> _nodeRank;
    readonly Option<int> _seed;
    readonly Option<int?> _threads;
    readonly Option<string?> _precision;
    readonly Option<FileInfo?> _config;
    // While a config file is merged: the options whose value came from it, so that their errors name the file.
    HashSet<Option> _fromConfig = [];
    string? _configPath;

    /// <summary>Creates the command line of the trainer <paramref name="trainerName"/>.</summary>
    /// <param name="trainerName">The trainer class name, shown in the help title.</param>
    /// <param name="description">The trainer's XML doc summary, or null.</param>
    public TrainerCommandLine(string trainerName, string? description)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(trainerName);
        TrainerName = trainerName;
        _root = new RootCommand(string.IsNullOrWhiteSpace(description) ? $"Runs the {trainerName} trainer on one or more ranks." : description);
        var defaults = new LaunchOptions();
        // The launch options validate the way [Option] properties do: the same attributes, the same messages.
        var atLeastOne = new RangeAttribute(1, int.MaxValue);
        _nprocPerNode = Launch<int>("--nproc-per-node", "Ranks to run on this node, one process per device (the job has nproc-per-node x nnodes ranks).", defaults.NProcPerNode, atLeastOne);
        // Round 1's name, kept so existing command lines and scripts run; it has always meant ranks on this node.
        _nprocPerNode.Aliases.Add("--world-size");
        _backend = Launch<string>("--backend", "Collective backend: auto (nccl on CUDA, else tcp), tcp or nccl.", defaults.Backend.Name());
        _backend.AcceptOnlyFromAmong([.. DistributedBackendNames.Launchable]);
        _masterAddr = Launch<string?>("--master-addr", "Rendezvous host (default 127.0.0.1).", defaults.MasterAddr);
        _masterPort = Launch<int?>("--master-port", "Rendezvous port (default: a free port).", defaults.MasterPort, new RangeAttribute(1, 65535));
        _nnodes = Launch<int>("--nnodes", "Number of nodes.", defaults.NNodes, atLeastOne);
        _nodeRank = Launch<int>("--node-rank", "This node's index in [0, nnodes).", defaults.NodeRank, new RangeAttribute(0, int.MaxValue));
        _seed = Launch<int>("--seed", "Seed for torch and the data order (the same on every rank).", defaults.Seed);
        _threads = Launch<int?>("--threads", "Torch intra-op threads per rank (default: cores / ranks).", defaults.Threads, atLeastOne);
        _precision = Launch<string?>("--precision",
            "Weights and compute: 32-true, tf32, bf16-mixed (f32 master weights, bf16 autocast) or bf16-true (default: bf16-mixed on CUDA, 32-true on the CPU).",
            defaults.Precision);
        _precision.HelpName = string.Join("|", Training.Precision.All.Select(p => p.Name));
        _precision.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } value && !Training.Precision.All.Any(p => string.Equals(p.Name, value, StringComparison.OrdinalIgnoreCase)))
                result.AddError($"Unknown --precision '{value}'; use one of {string.Join(", ", Training.Precision.All.Select(p => p.Name))}.");
        });
        _config = new Option<FileInfo?>("--config")
        {
            Description = "YAML file of option values (keys are option names without dashes); the command line wins.",
            HelpName = "file.yaml",
        };
        _root.Options.Add(_config);
        // Depends on two options, so it is the command's check, not one option's.
        _root.Validators.Add(command =>
        {
            // An option not given has no value yet while the command is checked: use its default.
            int nodes = command.GetResult(_nnodes) is { Implicit: false } ? command.GetValue(_nnodes) : defaults.NNodes;
            int node = command.GetResult(_nodeRank) is { Implicit: false } ? command.GetValue(_nodeRank) : defaults.NodeRank;
            if (nodes >= 1 && node >= nodes)
                command.AddError($"--node-rank must be less than --nnodes ({nodes}), got {node}.");
        });
    }

    /// <summary>The trainer class name.</summary>
    public string TrainerName { get; }

    /// <summary>
    /// Adds the option <paramref name="name"/> (with its leading dashes) of type <typeparamref name="T"/>, defaulting to
    /// <paramref name="defaultValue"/> and checked against <paramref name="constraints"/>, and returns it so the
    /// generated code can read its value.
    /// </summary>
    /// <param name="name">The option name, <c>--kebab-case</c>.</param>
    /// <param name="description">Help text, or null.</param>
    /// <param name="defaultValue">The value when neither the command line nor the config file gives one.</param>
    /// <param name="constraints">
    /// The <see cref="ValidationAttribute"/>s of the <c>[Option]</c> property (<see cref="RangeAttribute"/>,
    /// <see cref="RequiredAttribute"/>, <see cref="MustExistAttribute"/>, ...), recreated by the generated code.
    /// </param>
    /// <exception cref="ArgumentException">The name is not <c>--kebab-case</c> or is already taken.</exception>
    public TrainerOption<T> AddOption<T>(string name, string? description, T defaultValue, params ValidationAttribute[] constraints)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(constraints);
        if (!name.StartsWith("--", StringComparison.Ordinal) || name.Length < 3)
            throw new ArgumentException($"Option name '{name}' of trainer {TrainerName} must start with '--'.", nameof(name));
        if (_root.Options.Any(o => o.Name == name || o.Aliases.Contains(name)))
            throw new ArgumentException($"Trainer {TrainerName} defines the option '{name}' twice (or it clashes with a launch option).", nameof(name));
        var option = new Option<T>(name)
        {
            Description = OptionValidation.WithConstraints(description, constraints),
            DefaultValueFactory = _ => defaultValue,
            // Arrays accept "--ints 1 2 3" as well as "--ints 1 --ints 2".
            AllowMultipleArgumentsPerToken = typeof(T).IsArray,
        };
        Validate(option, constraints);
        _root.Options.Add(option);
        return new TrainerOption<T>(option);
    }

    /// <summary>
    /// Parses <paramref name="args"/> (merging the <c>--config</c> file), then calls <paramref name="run"/> with the
    /// arguments. Prints help, version or the errors instead when asked or needed.
    /// </summary>
    /// <param name="args">The command-line arguments.</param>
    /// <param name="run">The trainer's run: called once, with valid arguments; returns the exit code.</param>
    /// <param name="output">Where help goes; standard output when null.</param>
    /// <param name="error">Where errors go; standard error when null.</param>
    /// <returns><paramref name="run"/>'s exit code, 0 after help, or 1 on a command-line or config error.</returns>
    public int Invoke(IReadOnlyList<string> args, Func<TrainerArguments, int> run, TextWriter? output = null, TextWriter? error = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(run);
        var result = Parse(args, out var configError);
        error ??= Console.Error;
        if (configError is not null)
        {
            error.WriteLine(configError);
            return 1;
        }
        _root.SetAction(parsed => run(new TrainerArguments(parsed, [], ToLaunchOptions(parsed))));
        // The errors alone, not the whole help after them: the message names the option and what it accepts.
        if (result.Action is ParseErrorAction parseError) parseError.ShowHelp = false;
        var code = result.Invoke(new InvocationConfiguration { Output = output ?? Console.Out, Error = error });
        if (result.Errors.Count > 0) error.WriteLine($"Run with --help for the options of {TrainerName}.");
        return code;
    }

    /// <summary>Parses <paramref name="args"/>, adding the values of the <c>--config</c> file that the command line does not set.</summary>
    /// <param name="args">The command-line arguments.</param>
    /// <returns>The values, the launch options and the errors (parse, validation and config-file errors).</returns>
    public TrainerArguments Parse(IReadOnlyList<string> args)
    {
        var result = Parse(args, out var configError);
        var errors = result.Errors.Select(e => e.Message).ToList();
        if (configError is not null) errors.Add(configError);
        return new TrainerArguments(result, errors, errors.Count == 0 ? ToLaunchOptions(result) : null);
    }

    ParseResult Parse(IReadOnlyList<string> args, out string? configError)
    {
        ArgumentNullException.ThrowIfNull(args);
        configError = null;
        var result = Parse(args, fromConfig: [], configPath: null);
        // Errors elsewhere do not stop the merge: the file may supply what the command line lacks (a [Required] option).
        if (result.GetResult(_config) is not OptionResult { Tokens: [{ Value: { Length: > 0 } path }] }) return result;
        var file = new FileInfo(path);
        IReadOnlyList<KeyValuePair<string, IReadOnlyList<string>>> entries;
        try
        {
            entries = YamlConfigFile.Read(file.FullName);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or YamlConfigException)
        {
            configError = $"Cannot read the config file '{file.FullName}': {e.Message}";
            return result;
        }

        var extra = new List<string>();
        var fromConfig = new HashSet<Option>();
        foreach (var (key, values) in entries)
        {
            var option = _root.Options.FirstOrDefault(o => o.Name == "--" + key || o.Aliases.Contains("--" + key));
            if (option is null || option == _config)
            {
                var known = string.Join(", ", _root.Options.Where(o => o != _config && o.Name.StartsWith("--", StringComparison.Ordinal)).Select(o => o.Name[2..]));
                configError = $"The config file '{file.FullName}' has the key '{key}', which is not an option of {TrainerName}. Known keys: {known}.";
                return result;
            }
            // The command line wins over the file.
            if (result.GetResult(option) is OptionResult { Implicit: false }) continue;
            fromConfig.Add(option);
            if (values.Count == 0) extra.Add(option.Name);
            foreach (var value in values)
            {
                extra.Add(option.Name);
                extra.Add(value);
            }
        }
        return extra.Count == 0 ? result : Parse([.. args, .. extra], fromConfig, file.FullName);
    }

    ParseResult Parse(IReadOnlyList<string> args, HashSet<Option> fromConfig, string? configPath)
    {
        (_fromConfig, _configPath) = (fromConfig, configPath);
        try
        {
            return _root.Parse(args);
        }
        finally
        {
            (_fromConfig, _configPath) = ([], null);
        }
    }

    // Checks the option's final value, given or default, against its constraints; runs while parsing, so a bad value
    // is a parse error like a malformed one.
    void Validate<T>(Option<T> option, IReadOnlyList<ValidationAttribute> constraints)
    {
        if (constraints.Count == 0) return;
        option.Validators.Add(result =>
        {
            T? value;
            try
            {
                value = result.GetValueOrDefault<T>();
            }
            catch (InvalidOperationException)
            {
                return; // the value did not convert ("--steps many"): that error is reported already
            }
            var where = _fromConfig.Contains(option) ? $" (from the config file '{_configPath}')" : "";
            foreach (var problem in OptionValidation.Problems(option.Name, value, constraints))
                result.AddError(problem + where);
        });
    }

    LaunchOptions ToLaunchOptions(ParseResult parsed) => new()
    {
        NProcPerNode = parsed.GetValue(_nprocPerNode),
        Backend = parsed.GetValue(_backend) is { } backend ? DistributedBackendNames.Parse(backend) : DistributedBackend.Auto,
        MasterAddr = parsed.GetValue(_masterAddr),
        MasterPort = parsed.GetValue(_masterPort),
        NNodes = parsed.GetValue(_nnodes),
        NodeRank = parsed.GetValue(_nodeRank),
        Seed = parsed.GetValue(_seed),
        Threads = parsed.GetValue(_threads),
        Precision = parsed.GetValue(_precision) is { } precision ? Training.Precision.Parse(precision).Name : null,
    };

    Option<T> Launch<T>(string name, string description, T defaultValue, params ValidationAttribute[] constraints)
    {
        var option = new Option<T>(name) { Description = OptionValidation.WithConstraints(description, constraints), DefaultValueFactory = _ => defaultValue };
        Validate(option, constraints);
        _root.Options.Add(option);
        return option;
    }
}
