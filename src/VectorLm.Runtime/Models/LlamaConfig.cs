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
/// <c>max_position_embeddings</c> 2048, <c>tie_word_embeddings</c> false). <c>model_type</c> llama, mistral (without
/// a sliding window shorter than <c>max_position_embeddings</c>) and qwen2 (q/k/v biases; no sliding window);
/// <c>attention_bias</c> and <c>mlp_bias</c>; RoPE from transformers 5's <c>rope_parameters</c> or the older
/// <c>rope_theta</c> + <c>rope_scaling</c> (see <see cref="RopeScaling"/>). Fields this model cannot honour (dynamic
/// RoPE, an activation other than SiLU, sliding windows) are errors naming the field, not silently ignored; unrelated
/// fields (<c>torch_dtype</c>, <c>architectures</c>, ...) are ignored.
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

    /// <summary><c>model_type</c>: llama, mistral or qwen2.</summary>
    public string ModelType { get; init; } = "llama";
    /// <summary>Whether q_proj, k_proj and v_proj have biases (<c>attention_bias</c>; always for qwen2).</summary>
    public bool QkvBias { get; init; }
    /// <summary>Whether o_proj has a bias (Llama's <c>attention_bias</c> covers it; Qwen2's q/k/v biases do not).</summary>
    public bool OutputBias { get; init; }
    /// <summary>Whether gate_proj, up_proj and down_proj have biases (<c>mlp_bias</c>).</summary>
    public bool MlpBias { get; init; }
    /// <summary>Scaling of the rotary frequencies (<c>rope_parameters</c> / <c>rope_scaling</c>).</summary>
    public RopeScaling RopeScaling { get; init; } = RopeScaling.None;

    /// <summary>The rotary inverse frequencies (head_dim / 2 of them) with <see cref="RopeScaling"/> applied.</summary>
    public float[] RopeInverseFrequencies() => RopeScaling.InverseFrequencies(HeadDim, RopeTheta, MaxPositionEmbeddings);

    /// <summary>The factor cos and sin of the rotary embedding are multiplied by (yarn's attention factor; else 1).</summary>
    public float RopeAttentionFactor => RopeScaling.AttentionFactor(MaxPositionEmbeddings);

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
        if (ModelType is not ("llama" or "mistral" or "qwen2"))
            throw new ArgumentException($"model_type \"{ModelType}\" is not supported (llama, mistral, qwen2)");
        if (ModelType == "qwen2" ? !QkvBias || OutputBias : QkvBias != OutputBias)
            throw new ArgumentException($"q/k/v bias {QkvBias} and o_proj bias {OutputBias} do not fit model_type {ModelType} (attention_bias covers all four in llama; qwen2 has q/k/v biases only)");
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

        string modelType = obj["model_type"] is JsonValue mt ? mt.GetValue<string>() : "llama";
        if (modelType is not ("llama" or "mistral" or "qwen2"))
            throw new InvalidDataException($"config field \"model_type\" is \"{modelType}\"; supported: llama, mistral, qwen2");
        if (Optional("hidden_act", "silu") != "silu")
            throw new InvalidDataException($"config field \"hidden_act\" is \"{obj["hidden_act"]}\"; only \"silu\" is supported");
        if (Optional("use_sliding_window", false))
            throw new InvalidDataException("config field \"use_sliding_window\" = true is not supported");
        int maxPositions = Optional("max_position_embeddings", 2048);
        // Mistral applies a sliding window whenever one is set; one at least as long as the context changes nothing.
        if (modelType == "mistral" && obj["sliding_window"] is JsonValue window && window.GetValueKind() == JsonValueKind.Number && window.GetValue<int>() < maxPositions)
            throw new InvalidDataException($"config field \"sliding_window\" = {window} is shorter than max_position_embeddings {maxPositions}; sliding-window attention is not supported");
        if (modelType != "llama")
            foreach (string bias in new[] { "attention_bias", "mlp_bias" })
                if (Optional(bias, false)) throw new InvalidDataException($"config field \"{bias}\" = true is not supported for model_type {modelType}");
        bool attentionBias = Optional("attention_bias", false);

        // transformers 5: rope_parameters holds rope_theta and the scaling; before: rope_theta and rope_scaling.
        double ropeTheta = Optional("rope_theta", double.NaN);
        var scaling = RopeScaling.Parse(obj["rope_scaling"] as JsonObject, "rope_scaling");
        if (obj["rope_parameters"] is JsonObject rope)
        {
            if (double.IsNaN(ropeTheta)) ropeTheta = rope["rope_theta"] is JsonValue rt ? rt.GetValue<double>() : double.NaN;
            var parameters = RopeScaling.Parse(rope, "rope_parameters");
            if (obj["rope_scaling"] is JsonObject && parameters != scaling)
                throw new InvalidDataException("config fields \"rope_parameters\" and \"rope_scaling\" disagree; give one of them");
            scaling = parameters;
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
            MaxPositionEmbeddings = maxPositions,
            TieWordEmbeddings = Optional("tie_word_embeddings", false),
            HeadDimOverride = headDim,
            ModelType = modelType,
            QkvBias = modelType == "qwen2" || attentionBias,
            OutputBias = attentionBias,
            MlpBias = Optional("mlp_bias", false),
            RopeScaling = scaling,
        };
    }

    /// <summary>The Hugging Face <c>config.json</c> object for this config (loadable by transformers' LlamaForCausalLM).</summary>
    public JsonObject ToJson(string torchDtype = "float32") => new()
    {
        ["architectures"] = new JsonArray(ModelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" }),
        ["model_type"] = ModelType,
        ["hidden_size"] = HiddenSize,
        ["intermediate_size"] = IntermediateSize,
        ["num_hidden_layers"] = NumHiddenLayers,
        ["num_attention_heads"] = NumAttentionHeads,
        ["num_key_value_heads"] = NumKeyValueHeads,
        ["head_dim"] = HeadDim,
        ["vocab_size"] = VocabSize,
        ["rms_norm_eps"] = RmsNormEps,
        ["rope_theta"] = RopeTheta,
        ["rope_scaling"] = RopeScaling.Type == "default" ? null : RopeScaling.ToJson(RopeTheta),
        ["rope_parameters"] = RopeScaling.ToJson(RopeTheta),
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["tie_word_embeddings"] = TieWordEmbeddings,
        ["hidden_act"] = "silu",
        ["attention_bias"] = ModelType == "qwen2" ? null : QkvBias,
        ["mlp_bias"] = MlpBias,
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
