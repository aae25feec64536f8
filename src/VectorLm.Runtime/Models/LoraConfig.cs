using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VectorLm.Models;

/// <summary>
/// A LoRA adapter's settings, with the meaning and JSON names of PEFT's <c>LoraConfig</c> (<c>adapter_config.json</c>):
/// each targeted projection <c>W</c> computes <c>W x + scale · B A x</c> with <c>A</c> [r, in], <c>B</c> [out, r] and
/// <c>scale = alpha / r</c> (<c>alpha / sqrt(r)</c> with rsLoRA).
/// </summary>
/// <remarks>
/// Only what PEFT calls plain LoRA is supported. An <c>adapter_config.json</c> that asks for anything else (DoRA,
/// <c>bias</c> other than <c>"none"</c>, <c>modules_to_save</c>, per-module rank or alpha patterns, ...) is refused
/// with the field named, never half-applied.
/// </remarks>
public sealed record LoraConfig
{
    /// <summary>The projections of a Llama decoder layer an adapter can target (PEFT's module names).</summary>
    public static IReadOnlyList<string> AllProjections { get; } =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>Rank of the update (<c>r</c>).</summary>
    public int R { get; init; } = 8;

    /// <summary>Scaling numerator (<c>lora_alpha</c>).</summary>
    public double Alpha { get; init; } = 16;

    /// <summary>Dropout on the adapter's input while training (<c>lora_dropout</c>); 0 for none.</summary>
    public double Dropout { get; init; }

    /// <summary>
    /// Projections to adapt in every layer (<c>target_modules</c>): any of <see cref="AllProjections"/>. Default: all
    /// seven, the usual choice for RL fine-tuning.
    /// </summary>
    public IReadOnlyList<string> TargetModules { get; init; } = AllProjections;

    /// <summary>rsLoRA (<c>use_rslora</c>): scale by <c>alpha / sqrt(r)</c> instead of <c>alpha / r</c>.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>Seed of <c>A</c>'s initialisation (<c>B</c> starts at zero, so a new adapter leaves the model's output unchanged).</summary>
    public long Seed { get; init; }

    /// <summary>The factor applied to <c>B A x</c>.</summary>
    public double Scale => UseRsLora ? Alpha / Math.Sqrt(R) : Alpha / R;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad field.</summary>
    public void Validate()
    {
        if (R < 1) throw new ArgumentException($"LoraConfig.R (r) must be at least 1, got {R}");
        if (!(Alpha > 0) || double.IsInfinity(Alpha)) throw new ArgumentException($"LoraConfig.Alpha (lora_alpha) must be positive and finite, got {Alpha.ToString(CultureInfo.InvariantCulture)}");
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"LoraConfig.Dropout (lora_dropout) must be in [0, 1), got {Dropout.ToString(CultureInfo.InvariantCulture)}");
        if (TargetModules is null || TargetModules.Count == 0) throw new ArgumentException("LoraConfig.TargetModules (target_modules) must name at least one projection");
        foreach (var m in TargetModules)
            if (!AllProjections.Contains(m))
                throw new ArgumentException($"LoraConfig.TargetModules: \"{m}\" is not a supported target; supported: {string.Join(", ", AllProjections)}");
        if (TargetModules.Distinct().Count() != TargetModules.Count)
            throw new ArgumentException($"LoraConfig.TargetModules lists a module twice: {string.Join(", ", TargetModules)}");
    }

    /// <summary>Same rank and targets (what decides the shapes of the adapter's tensors).</summary>
    public bool HasSameLayout(LoraConfig other) =>
        R == other.R && TargetModules.Order(StringComparer.Ordinal).SequenceEqual(other.TargetModules.Order(StringComparer.Ordinal));

    /// <summary>PEFT's <c>adapter_config.json</c> for this config (loadable by <c>PeftModel.from_pretrained</c>).</summary>
    public JsonObject ToPeftJson(string? baseModel = null) => new()
    {
        ["peft_type"] = "LORA",
        ["task_type"] = "CAUSAL_LM",
        ["base_model_name_or_path"] = baseModel,
        ["r"] = R,
        ["lora_alpha"] = Alpha,
        ["lora_dropout"] = Dropout,
        ["target_modules"] = new JsonArray(TargetModules.Select(m => (JsonNode)m).ToArray()),
        ["use_rslora"] = UseRsLora,
        ["use_dora"] = false,
        ["bias"] = "none",
        ["fan_in_fan_out"] = false,
        ["modules_to_save"] = null,
        ["layers_to_transform"] = null,
        ["layers_pattern"] = null,
        ["rank_pattern"] = new JsonObject(),
        ["alpha_pattern"] = new JsonObject(),
        ["init_lora_weights"] = true,
        ["inference_mode"] = true,
    };

    /// <summary>
    /// Reads PEFT's <c>adapter_config.json</c> fields. <c>target_modules</c> is a list of projection names or
    /// <c>"all-linear"</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">A missing or unsupported field; the message names it.</exception>
    public static LoraConfig FromPeftJson(JsonObject obj)
    {
        string peftType = Str(obj, "peft_type") ?? throw new InvalidDataException("field \"peft_type\" is missing");
        if (peftType != "LORA") throw new InvalidDataException($"field \"peft_type\" is \"{peftType}\"; only \"LORA\" adapters are supported");
        // Refused by name: features that change the math or add tensors this model does not have.
        if (Bool(obj, "use_dora")) throw new InvalidDataException("field \"use_dora\" = true: DoRA adapters are not supported");
        if (Str(obj, "bias") is { } bias && bias != "none") throw new InvalidDataException($"field \"bias\" = \"{bias}\" is not supported (only \"none\")");
        if (Bool(obj, "lora_bias")) throw new InvalidDataException("field \"lora_bias\" = true is not supported");
        if (obj["modules_to_save"] is JsonArray { Count: > 0 } saved)
            throw new InvalidDataException($"field \"modules_to_save\" = {saved.ToJsonString()} is not supported (fully trained copies of modules)");
        foreach (string pattern in new[] { "rank_pattern", "alpha_pattern" })
            if (obj[pattern] is JsonObject { Count: > 0 } p)
                throw new InvalidDataException($"field \"{pattern}\" = {p.ToJsonString()} is not supported (one rank and alpha for every module)");
        foreach (string field in new[] { "layers_to_transform", "layer_replication", "target_parameters", "trainable_token_indices", "exclude_modules" })
            if (obj[field] is JsonNode n && n.GetValueKind() != JsonValueKind.Null && !(n is JsonArray { Count: 0 }))
                throw new InvalidDataException($"field \"{field}\" = {n.ToJsonString()} is not supported");
        if (Bool(obj, "fan_in_fan_out")) throw new InvalidDataException("field \"fan_in_fan_out\" = true is not supported (Llama projections are nn.Linear)");
        if (Bool(obj, "use_qalora")) throw new InvalidDataException("field \"use_qalora\" = true is not supported");

        int r = obj["r"] is JsonNode rn && rn.GetValueKind() == JsonValueKind.Number ? rn.GetValue<int>()
            : throw new InvalidDataException("field \"r\" is missing");
        double alpha = obj["lora_alpha"] is JsonNode an && an.GetValueKind() == JsonValueKind.Number ? an.GetValue<double>() : 8; // PEFT's default
        double dropout = obj["lora_dropout"] is JsonNode dn && dn.GetValueKind() == JsonValueKind.Number ? dn.GetValue<double>() : 0;
        var config = new LoraConfig
        {
            R = r,
            Alpha = alpha,
            Dropout = dropout,
            TargetModules = ReadTargets(obj["target_modules"]),
            UseRsLora = Bool(obj, "use_rslora"),
        };
        try { config.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException(e.Message, e); }
        return config;
    }

    static IReadOnlyList<string> ReadTargets(JsonNode? node)
    {
        switch (node)
        {
            case null:
                throw new InvalidDataException("field \"target_modules\" is missing");
            case JsonArray list:
                var names = list.Select(n => n?.GetValue<string>() ?? "").ToList();
                foreach (var n in names)
                    if (!AllProjections.Contains(n))
                        throw new InvalidDataException($"field \"target_modules\": \"{n}\" is not supported; supported: {string.Join(", ", AllProjections)}");
                return names;
            case JsonValue v when v.GetValueKind() == JsonValueKind.String:
                string pattern = v.GetValue<string>();
                if (pattern == "all-linear") return AllProjections; // PEFT: every linear layer but the output head
                throw new InvalidDataException($"field \"target_modules\" = \"{pattern}\": regular-expression targets are not supported; list the projections");
            default:
                throw new InvalidDataException($"field \"target_modules\" = {node.ToJsonString()} must be a list of module names or a pattern");
        }
    }

    static string? Str(JsonObject obj, string name) => obj[name] is JsonNode n && n.GetValueKind() == JsonValueKind.String ? n.GetValue<string>() : null;

    static bool Bool(JsonObject obj, string name) => obj[name] is JsonNode n && n.GetValueKind() == JsonValueKind.True;
}
