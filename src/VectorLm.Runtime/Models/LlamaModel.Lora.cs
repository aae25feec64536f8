using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace VectorLm.Models;

public sealed partial class LlamaModel
{
    /// <summary>PEFT's adapter settings file.</summary>
    public const string AdapterConfigFileName = "adapter_config.json";
    /// <summary>PEFT's adapter weights file.</summary>
    public const string AdapterWeightsFileName = "adapter_model.safetensors";
    // PEFT saves names as the PeftModel sees them: LlamaForCausalLM wrapped as base_model.model.
    const string PeftPrefix = "base_model.model.";

    LoraState? _lora;
    long _baseRevision;

    sealed record LoraSlot(string Module, LoraHost Host, string Name, LoraLinear Layer);

    sealed class LoraState(LoraConfig config, List<LoraSlot> slots, Dictionary<string, bool> trainableBefore)
    {
        public LoraConfig Config { get; set; } = config;
        public List<LoraSlot> Slots { get; } = slots;
        public Dictionary<string, bool> TrainableBefore { get; } = trainableBefore;
    }

    /// <summary>The active LoRA adapter's settings, or null when the model has none.</summary>
    public LoraConfig? Lora => _lora?.Config;

    /// <summary>
    /// Counts changes of the base weights other than optimizer steps (<see cref="LoadWeights"/>,
    /// <see cref="MergeAdapter"/>): an engine that synced at the same revision needs only the adapter and the
    /// trainable parameters.
    /// </summary>
    internal long BaseRevision => Interlocked.Read(ref _baseRevision);

    internal static bool IsAdapterParameter(string name) =>
        name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);

    /// <summary>The model's own (Hugging Face) parameters, without any adapter's.</summary>
    internal IEnumerable<(string name, Parameter parameter)> BaseParameters() =>
        named_parameters().Where(p => !IsAdapterParameter(p.name));

    ParameterIndex? _baseParameterIndex;

    /// <summary>
    /// <see cref="BaseParameters"/> by name, the same dictionary from call to call while the module tree is unchanged
    /// (see <see cref="ParameterIndex"/>): what the sampling engines read at every sync, cheaply.
    /// </summary>
    internal IReadOnlyDictionary<string, Tensor> BaseParameterDictionary() =>
        (_baseParameterIndex ??= new ParameterIndex(this, name => !IsAdapterParameter(name))).Current();

    /// <summary>
    /// Adds a LoRA adapter (PEFT's <c>get_peft_model</c>): every targeted projection of every layer gets
    /// <c>A</c> [r, in] drawn as PEFT does and <c>B</c> [out, r] = 0, and every base parameter stops requiring
    /// gradients, so <see cref="Training.Optimizers"/> and the gradient all-reduce see only the adapter. Call it
    /// before creating the optimizer (and the trainer).
    /// </summary>
    /// <exception cref="ArgumentException">The config is invalid (the message names the field).</exception>
    /// <exception cref="InvalidOperationException">The model already has an adapter.</exception>
    public void AddLora(LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (_lora is not null)
            throw new InvalidOperationException($"The model already has a LoRA adapter (r = {_lora.Config.R}); merge it (MergeAdapter) or load into it (LoadAdapter).");
        var trainableBefore = named_parameters().ToDictionary(p => p.name, p => p.parameter.requires_grad);
        var generator = new Generator((ulong)config.Seed);
        var slots = new List<LoraSlot>();
        foreach (var (module, host, name) in TargetedProjections(config))
        {
            if (host.GetProjection(name) is not Linear linear)
                throw new InvalidOperationException($"{module} is not a plain linear layer; cannot add an adapter to it.");
            var layer = new LoraLinear(linear, config, generator);
            host.SetProjection(name, layer);
            slots.Add(new LoraSlot(module, host, name, layer));
        }
        foreach (var (name, p) in named_parameters())
            if (!IsAdapterParameter(name)) p.requires_grad = false;
        _lora = new LoraState(config, slots, trainableBefore);
    }

    /// <summary>The adapted projections (live parameters), in layer order; empty when the model has no adapter.</summary>
    public IReadOnlyList<LoraWeights> AdapterWeights() => _lora is null ? []
        : _lora.Slots.Select(s => new LoraWeights(s.Module, s.Module + ".weight", s.Layer.A, s.Layer.B, s.Layer.Scale)).ToList();

    /// <summary>
    /// Writes the adapter in PEFT's layout: <c>adapter_config.json</c> and <c>adapter_model.safetensors</c> with
    /// names such as <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>, loadable by
    /// <c>PeftModel.from_pretrained</c>. Each file is written under a temporary name and renamed.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no adapter.</exception>
    public void SaveAdapter(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        var lora = _lora ?? throw new InvalidOperationException("The model has no LoRA adapter to save (AddLora or LoadAdapter first).");
        Directory.CreateDirectory(folder);
        var tensors = new List<(string, Tensor)>();
        foreach (var s in lora.Slots)
        {
            tensors.Add((PeftPrefix + s.Module + ".lora_A.weight", s.Layer.A));
            tensors.Add((PeftPrefix + s.Module + ".lora_B.weight", s.Layer.B));
        }
        SafetensorsFile.Save(Path.Combine(folder, AdapterWeightsFileName), tensors);
        string configPath = Path.Combine(folder, AdapterConfigFileName);
        File.WriteAllText(configPath + ".tmp", lora.Config.ToPeftJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(configPath + ".tmp", configPath, overwrite: true);
    }

    /// <summary>
    /// Reads a PEFT adapter folder (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>). A model without
    /// an adapter gets one with the folder's settings; a model with one must have the same rank and targets, and
    /// takes the folder's alpha, rsLoRA and dropout. Everything is checked before anything changes.
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// Unsupported PEFT feature (named), a tensor missing or unknown, or a shape that does not fit the model (the
    /// message names the tensor and both shapes).
    /// </exception>
    public void LoadAdapter(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string configPath = Path.Combine(folder, AdapterConfigFileName), weightsPath = Path.Combine(folder, AdapterWeightsFileName);
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{folder}: no {AdapterConfigFileName}", configPath);
        if (!File.Exists(weightsPath))
            throw new FileNotFoundException(File.Exists(Path.Combine(folder, "adapter_model.bin"))
                ? $"{folder}: only adapter_model.bin (pickle) is present; save the adapter with safe_serialization=True"
                : $"{folder}: no {AdapterWeightsFileName}", weightsPath);
        LoraConfig config;
        try
        {
            var root = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject
                ?? throw new InvalidDataException("expected a JSON object");
            config = LoraConfig.FromPeftJson(root);
        }
        catch (Exception e) when (e is JsonException or InvalidDataException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{configPath}: {e.Message}", e);
        }

        using var file = SafetensorsFile.Open(weightsPath);
        // The tensors the folder's config implies on this model, with the shapes this model needs.
        var expected = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (module, host, name) in TargetedProjections(config))
        {
            var weight = host.GetProjection(name) switch
            {
                LoraLinear l => l.Weight,
                Linear l => l.weight!,
                var other => throw new InvalidOperationException($"{module} is a {other.GetType().Name}, not a linear layer"),
            };
            expected[$"{PeftPrefix}{module}.lora_A.weight"] = [config.R, weight.shape[1]];
            expected[$"{PeftPrefix}{module}.lora_B.weight"] = [weight.shape[0], config.R];
        }
        foreach (var (name, entry) in file.Entries)
        {
            if (!expected.ContainsKey(name))
                throw new InvalidDataException($"{weightsPath}: tensor \"{name}\" (shape {SafetensorsFile.FormatShape(entry.Shape)}) " + (
                    name.Contains("lora_magnitude_vector", StringComparison.Ordinal) ? "is a DoRA magnitude; DoRA adapters are not supported"
                    : name.Contains("lora_embedding_", StringComparison.Ordinal) ? "adapts an embedding; only the projections q/k/v/o/gate/up/down_proj are supported"
                    : $"does not belong to a LoRA adapter of r = {config.R} on {string.Join(", ", config.TargetModules)} over this model (wrong base model or target_modules?)"));
        }
        foreach (var (name, shape) in expected)
        {
            if (!file.Entries.TryGetValue(name, out var entry))
                throw new InvalidDataException($"{weightsPath}: tensor \"{name}\" (shape {SafetensorsFile.FormatShape(shape)}) is missing; target_modules names it");
            if (!entry.Shape.SequenceEqual(shape))
                throw new InvalidDataException($"{weightsPath}: tensor \"{name}\" has shape {SafetensorsFile.FormatShape(entry.Shape)} but the model expects {SafetensorsFile.FormatShape(shape)} (r = {config.R} from {AdapterConfigFileName})");
        }
        if (_lora is { } current && !current.Config.HasSameLayout(config))
        {
            var first = current.Slots[0];
            throw new InvalidDataException($"{folder}: the adapter has r = {config.R} on {string.Join(", ", config.TargetModules)} but the model's adapter has " +
                $"r = {current.Config.R} on {string.Join(", ", current.Config.TargetModules)}: tensor \"{PeftPrefix}{first.Module}.lora_A.weight\" has shape " +
                $"{SafetensorsFile.FormatShape(file.Entries.GetValueOrDefault($"{PeftPrefix}{first.Module}.lora_A.weight")?.Shape ?? [config.R, first.Layer.A.shape[1]])} " +
                $"but the model expects {SafetensorsFile.FormatShape(first.Layer.A.shape)}. Merge the current adapter first (MergeAdapter).");
        }

        if (_lora is null) AddLora(config);
        var lora = _lora!;
        lora.Config = config with { Seed = lora.Config.Seed };
        using var noGrad = no_grad();
        foreach (var s in lora.Slots)
        {
            s.Layer.Scale = config.Scale;
            s.Layer.DropoutProbability = config.Dropout;
            file.CopyInto($"{PeftPrefix}{s.Module}.lora_A.weight", s.Layer.A);
            file.CopyInto($"{PeftPrefix}{s.Module}.lora_B.weight", s.Layer.B);
        }
    }

    /// <summary>
    /// Folds the adapter into the base weights (<c>W += scale · B A</c>, PEFT's <c>merge_and_unload</c>), removes
    /// it and makes the base parameters trainable again as they were before <see cref="AddLora"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model has no adapter.</exception>
    public void MergeAdapter()
    {
        var lora = _lora ?? throw new InvalidOperationException("The model has no LoRA adapter to merge.");
        foreach (var s in lora.Slots)
        {
            s.Layer.MergeIntoBase();
            s.Host.SetProjection(s.Name, s.Layer.ToLinear());
            s.Layer.DisposeAdapter();
        }
        _lora = null;
        foreach (var (name, p) in named_parameters())
            if (lora.TrainableBefore.TryGetValue(name, out bool trainable)) p.requires_grad = trainable;
        Interlocked.Increment(ref _baseRevision);
    }

    /// <summary>
    /// The projections <paramref name="config"/> targets, in layer order: the module's path as PEFT names it
    /// (<c>model.layers.0.self_attn.q_proj</c>), its host and its slot. A list: adding an adapter re-registers modules.
    /// </summary>
    List<(string Module, LoraHost Host, string Name)> TargetedProjections(LoraConfig config)
    {
        var targeted = new List<(string, LoraHost, string)>();
        foreach (var (path, module) in named_modules())
        {
            if (module is not LoraHost host) continue;
            foreach (string name in host.ProjectionNames)
                if (config.TargetModules.Contains(name)) targeted.Add(($"{path}.{name}", host, name));
        }
        return targeted;
    }
}
