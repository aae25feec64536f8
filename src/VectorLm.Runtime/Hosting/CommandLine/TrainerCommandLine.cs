using System.CommandLine;
using System.CommandLine.Parsing;

namespace VectorLm.Hosting.CommandLine;

/// <summary>
/// The command line of a generated <c>[DistributedTrainer]</c> entry point: the launch options every trainer accepts
/// (<c>--nproc-per-node</c>, <c>--backend</c>, <c>--master-addr</c>, <c>--master-port</c>, <c>--nnodes</c>,
/// <c>--node-rank</c>, <c>--seed</c>, <c>--threads</c>, <c>--precision</c>), <c>--config file.yaml</c>, and one option per
/// <c>[Option]</c> property, added by the generated code with <see cref="AddOption{T}"/>.
/// </summary>
/// <remarks>
/// Values come from, in order of precedence: the command line, the YAML file named by <c>--config</c> (keys equal
/// option names without dashes), the property initializer. YAML values are turned into command-line tokens and parsed
/// by the same options, so both sources accept the same syntax and report the same errors.
/// </remarks>
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

    /// <summary>Creates the command line of the trainer <paramref name="trainerName"/>.</summary>
    /// <param name="trainerName">The trainer class name, shown in the help title.</param>
    /// <param name="description">The trainer's XML doc summary, or null.</param>
    public TrainerCommandLine(string trainerName, string? description)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(trainerName);
        TrainerName = trainerName;
        _root = new RootCommand(string.IsNullOrWhiteSpace(description) ? $"Runs the {trainerName} trainer on one or more ranks." : description);
        var defaults = new LaunchOptions();
        _nprocPerNode = Launch<int>("--nproc-per-node", "Ranks to run on this node, one process per device (the job has nproc-per-node x nnodes ranks).", defaults.NProcPerNode);
        // Round 1's name, kept so existing command lines and scripts run; it has always meant ranks on this node.
        _nprocPerNode.Aliases.Add("--world-size");
        _backend = Launch<string>("--backend", "Collective backend: auto (nccl on CUDA, else tcp), tcp or nccl.", defaults.Backend.Name());
        _backend.AcceptOnlyFromAmong([.. DistributedBackendNames.Launchable]);
        _masterAddr = Launch<string?>("--master-addr", "Rendezvous host (default 127.0.0.1).", defaults.MasterAddr);
        _masterPort = Launch<int?>("--master-port", "Rendezvous port (default: a free port).", defaults.MasterPort);
        _nnodes = Launch<int>("--nnodes", "Number of nodes.", defaults.NNodes);
        _nodeRank = Launch<int>("--node-rank", "This node's index in [0, nnodes).", defaults.NodeRank);
        _seed = Launch<int>("--seed", "Seed for torch and the data order (the same on every rank).", defaults.Seed);
        _threads = Launch<int?>("--threads", "Torch intra-op threads per rank (default: cores / ranks).", defaults.Threads);
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
    }

    /// <summary>The trainer class name.</summary>
    public string TrainerName { get; }

    /// <summary>The root command (for tests and custom help).</summary>
    public RootCommand Command => _root;

    /// <summary>
    /// Adds the option <paramref name="name"/> (with its leading dashes) of type <typeparamref name="T"/>, defaulting to
    /// <paramref name="defaultValue"/>, and returns it so the generated code can read its value.
    /// </summary>
    /// <exception cref="ArgumentException">The name is not <c>--kebab-case</c> or is already taken.</exception>
    public Option<T> AddOption<T>(string name, string? description, T defaultValue)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (!name.StartsWith("--", StringComparison.Ordinal) || name.Length < 3)
            throw new ArgumentException($"Option name '{name}' of trainer {TrainerName} must start with '--'.", nameof(name));
        if (_root.Options.Any(o => o.Name == name || o.Aliases.Contains(name)))
            throw new ArgumentException($"Trainer {TrainerName} defines the option '{name}' twice (or it clashes with a launch option).", nameof(name));
        var option = new Option<T>(name)
        {
            Description = description,
            DefaultValueFactory = _ => defaultValue,
            // Arrays accept "--ints 1 2 3" as well as "--ints 1 --ints 2".
            AllowMultipleArgumentsPerToken = typeof(T).IsArray,
        };
        _root.Options.Add(option);
        return option;
    }

    /// <summary>
    /// Parses <paramref name="args"/> (merging the <c>--config</c> file), then calls <paramref name="run"/> with the
    /// parse result and the launch options. Prints help, version or parse errors instead when asked or needed.
    /// </summary>
    /// <returns><paramref name="run"/>'s exit code, 0 after help, or 1 on a command-line or config error.</returns>
    public int Invoke(IReadOnlyList<string> args, Func<ParseResult, LaunchOptions, int> run)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(run);
        var result = Parse(args, out var configError);
        if (configError is not null)
        {
            Console.Error.WriteLine(configError);
            return 1;
        }
        _root.SetAction(parsed => run(parsed, ToLaunchOptions(parsed)));
        return result.Invoke();
    }

    /// <summary>Parses <paramref name="args"/>, adding the values of the <c>--config</c> file that the command line does not set.</summary>
    /// <param name="args">The command-line arguments.</param>
    /// <param name="configError">A message naming the file and the problem when the config file cannot be used; else null.</param>
    public ParseResult Parse(IReadOnlyList<string> args, out string? configError)
    {
        ArgumentNullException.ThrowIfNull(args);
        configError = null;
        var result = _root.Parse(args);
        if (result.Errors.Count > 0 || result.GetValue(_config) is not { } file) return result;

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
            if (values.Count == 0) extra.Add(option.Name);
            foreach (var value in values)
            {
                extra.Add(option.Name);
                extra.Add(value);
            }
        }
        return extra.Count == 0 ? result : _root.Parse([.. args, .. extra]);
    }

    /// <summary>Reads the launch options out of a parse result of this command line.</summary>
    public LaunchOptions ToLaunchOptions(ParseResult parsed)
    {
        ArgumentNullException.ThrowIfNull(parsed);
        return new LaunchOptions
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
    }

    Option<T> Launch<T>(string name, string description, T defaultValue)
    {
        var option = new Option<T>(name) { Description = description, DefaultValueFactory = _ => defaultValue };
        _root.Options.Add(option);
        return option;
    }
}
