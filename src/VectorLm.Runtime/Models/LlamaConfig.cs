using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VectorLm.Models;

/// <summary>
/// The shape of a Llama-architecture decoder, read from and written to a Hugging Face <c>config.json</c>.
/// </summary>
/// <remarks>
/// Required fields: <c>hidden_size</c>, <c>intermediate_size</c>, <c>num_hidden_layers</c>,
/// <c>num_attention_heads</c>, <c>vocab_size</c>. The others default as in transformers' <c>LlamaConfig</c>
/// (<c>num_key_value_heads</c> = heads, <c>rms_norm_eps</c> 1e-6, <c>rope_theta</c> 10000,
/// <c>max_position_embeddings</c> 2048, <c>tie_word_embeddings</c> false). <c>rope_theta</c> is also read from
/// transformers 5's <c>rope_parameters</c>. Fields this model cannot honour (rope scaling, biases, an activation other
/// than SiLU) are errors, not silently ignored; unrelated fields (<c>torch_dtype</c>, <c>architectures</c>, ...) are.
/// </remarks>
public sealed record LlamaConfig
{
    /// <summary>Width of the residual stream (<c>hidden_size</c>).</summary>
    public required int HiddenSize { get; init; }
    /// <summary>Width of the SwiGLU hidden layer (<c>intermediate_size</c>).</summary>
    public required int IntermediateSize { get; init; }
    /// <summary>Number of decoder layers (<c>num_hidden_layers</c>).</summary>
    public required int NumHiddenLayers { get; init; }
    /// <summary>Number of query heads (<c>num_attention_heads</c>).</summary>
    public required int NumAttentionHeads { get; init; }
    /// <summary>Number of key/value heads (<c>num_key_value_heads</c>); fewer than query heads is grouped-query attention.</summary>
    public required int NumKeyValueHeads { get; init; }
    /// <summary>Vocabulary size (<c>vocab_size</c>).</summary>
    public required int VocabSize { get; init; }
    /// <summary>Epsilon of RMSNorm (<c>rms_norm_eps</c>).</summary>
    public double RmsNormEps { get; init; } = 1e-6;
    /// <summary>Base of the rotary frequencies (<c>rope_theta</c>).</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>Longest sequence the model accepts (<c>max_position_embeddings</c>).</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>Whether the output head shares the token embedding (<c>tie_word_embeddings</c>).</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Per-head width (<c>head_dim</c>); defaults to <see cref="HiddenSize"/> / <see cref="NumAttentionHeads"/>.</summary>
    public int? HeadDimOverride { get; init; }

    /// <summary>Per-head width used by the model.</summary>
    public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;

    /// <summary>
    /// The embedded default: a 2-layer model over the 259-token byte-level vocabulary of
    /// <see cref="Tokenization.Tokenizer.ByteLevel"/>, small enough to train in seconds on 2 CPU cores.
    /// </summary>
    public static LlamaConfig Tiny { get; } = new()
    {
        HiddenSize = 64, IntermediateSize = 176, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        VocabSize = 259, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 256, TieWordEmbeddings = true,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent field.</summary>
    public void Validate()
    {
        static void Positive(string name, double value)
        {
            if (!(value > 0)) throw new ArgumentException($"config field {name} must be positive, got {value.ToString(CultureInfo.InvariantCulture)}");
        }
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumHiddenLayers);
        Positive("num_attention_heads", NumAttentionHeads);
        Positive("num_key_value_heads", NumKeyValueHeads);
        Positive("vocab_size", VocabSize);
        Positive("rms_norm_eps", RmsNormEps);
        Positive("rope_theta", RopeTheta);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (HeadDimOverride is null && HiddenSize % NumAttentionHeads != 0)
            throw new ArgumentException($"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        if (NumAttentionHeads % NumKeyValueHeads != 0)
            throw new ArgumentException($"num_attention_heads {NumAttentionHeads} is not divisible by num_key_value_heads {NumKeyValueHeads}");
        if (HeadDim % 2 != 0 || HeadDim <= 0) throw new ArgumentException($"head_dim {HeadDim} must be positive and even (rotary embeddings)");
    }

    /// <summary>Reads a Hugging Face <c>config.json</c>.</summary>
    /// <exception cref="InvalidDataException">A required field is missing or a field has a value this model cannot honour; the message names the file and field.</exception>
    public static LlamaConfig Load(string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON: {e.Message}", e);
        }
        if (root is not JsonObject obj) throw new InvalidDataException($"{path}: expected a JSON object");
        try
        {
            var config = FromJson(obj);
            config.Validate();
            return config;
        }
        catch (Exception e) when (e is InvalidDataException or ArgumentException or FormatException or InvalidOperationException)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Reads the fields of a parsed <c>config.json</c>.</summary>
    public static LlamaConfig FromJson(JsonObject obj)
    {
        int Required(string name) => obj[name] is JsonNode n && n.GetValueKind() == JsonValueKind.Number
            ? n.GetValue<int>()
            : throw new InvalidDataException($"required config field \"{name}\" is missing");
        T Optional<T>(string name, T fallback) => obj[name] is JsonNode n && n.GetValueKind() != JsonValueKind.Null ? n.GetValue<T>() : fallback;

        if (obj["model_type"] is JsonNode mt && mt.GetValue<string>() is not ("llama" or "mistral"))
            throw new InvalidDataException($"config field \"model_type\" is \"{mt}\"; only \"llama\" is supported");
        if (obj["rope_scaling"] is JsonNode scaling && scaling.GetValueKind() != JsonValueKind.Null)
            throw new InvalidDataException($"config field \"rope_scaling\" = {scaling.ToJsonString()} is not supported (only plain rotary embeddings)");
        if (Optional("hidden_act", "silu") != "silu")
            throw new InvalidDataException($"config field \"hidden_act\" is \"{obj["hidden_act"]}\"; only \"silu\" is supported");
        foreach (string bias in new[] { "attention_bias", "mlp_bias" })
            if (Optional(bias, false)) throw new InvalidDataException($"config field \"{bias}\" = true is not supported");

        double ropeTheta = Optional("rope_theta", double.NaN);
        if (double.IsNaN(ropeTheta) && obj["rope_parameters"] is JsonObject rope)
        {
            if (rope["rope_type"] is JsonNode rt && rt.GetValue<string>() != "default")
                throw new InvalidDataException($"config field \"rope_parameters.rope_type\" is \"{rt}\"; only \"default\" is supported");
            ropeTheta = rope["rope_theta"]?.GetValue<double>() ?? double.NaN;
        }
        int heads = Required("num_attention_heads");
        int hidden = Required("hidden_size");
        int? headDim = obj["head_dim"] is JsonNode hd && hd.GetValueKind() == JsonValueKind.Number ? hd.GetValue<int>() : null;
        if (headDim == hidden / heads && hidden % heads == 0) headDim = null; // the default, not an override
        return new LlamaConfig
        {
            HiddenSize = hidden,
            IntermediateSize = Required("intermediate_size"),
            NumHiddenLayers = Required("num_hidden_layers"),
            NumAttentionHeads = heads,
            NumKeyValueHeads = Optional("num_key_value_heads", heads),
            VocabSize = Required("vocab_size"),
            RmsNormEps = Optional("rms_norm_eps", 1e-6),
            RopeTheta = double.IsNaN(ropeTheta) ? 10000 : ropeTheta,
            MaxPositionEmbeddings = Optional("max_position_embeddings", 2048),
            TieWordEmbeddings = Optional("tie_word_embeddings", false),
            HeadDimOverride = headDim,
        };
    }

    /// <summary>The Hugging Face <c>config.json</c> object for this config (loadable by transformers' LlamaForCausalLM).</summary>
    public JsonObject ToJson(string torchDtype = "float32") => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["num_key_value_heads"] = NumKeyValueHeads,
        ["head_dim"] = HeadDim,
        ["vocab_size"] = VocabSize,
        ["rms_norm_eps"] = RmsNormEps,
        ["rope_theta"] = RopeTheta,
        ["rope_scaling"] = null,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["tie_word_embeddings"] = TieWordEmbeddings,
        ["hidden_act"] = "silu",
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = 2,
        ["torch_dtype"] = torchDtype,
    };

    /// <summary>Writes <c>config.json</c> to <paramref name="path"/> (temporary file, then rename).</summary>
    public void Save(string path, string torchDtype = "float32")
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, ToJson(torchDtype).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(tmp, path, overwrite: true);
    }
}
