using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VectorLm.Models;

/// <summary>
/// How a checkpoint scales its rotary frequencies (<c>rope_parameters</c> in transformers 5, <c>rope_scaling</c>
/// before), and the one place the SDK computes them: <see cref="InverseFrequencies"/> and <see cref="AttentionFactor"/>
/// follow transformers' <c>ROPE_INIT_FUNCTIONS</c> for <c>default</c>, <c>linear</c>, <c>llama3</c> and <c>yarn</c>.
/// </summary>
/// <param name="Type"><c>rope_type</c>: default, linear, llama3 or yarn.</param>
/// <param name="Factor"><c>factor</c> (1 for default).</param>
/// <param name="OriginalMaxPositions"><c>original_max_position_embeddings</c> (llama3, yarn).</param>
/// <param name="LowFreqFactor"><c>low_freq_factor</c> (llama3).</param>
/// <param name="HighFreqFactor"><c>high_freq_factor</c> (llama3).</param>
/// <param name="BetaFast"><c>beta_fast</c> (yarn, default 32).</param>
/// <param name="BetaSlow"><c>beta_slow</c> (yarn, default 1).</param>
/// <param name="ExplicitAttentionFactor"><c>attention_factor</c> (yarn), when given.</param>
/// <param name="Truncate"><c>truncate</c> (yarn, default true): correction range rounded to whole dimensions.</param>
public sealed record RopeScaling(string Type, double Factor = 1, int? OriginalMaxPositions = null, double LowFreqFactor = 1,
    double HighFreqFactor = 4, double BetaFast = 32, double BetaSlow = 1, double? ExplicitAttentionFactor = null, bool Truncate = true)
{
    /// <summary>Plain rotary embeddings.</summary>
    public static RopeScaling None { get; } = new("default");

    /// <summary>
    /// Inverse frequencies, one per pair of dimensions (<paramref name="headDim"/> / 2 of them), as transformers
    /// computes them (in float32).
    /// </summary>
    public float[] InverseFrequencies(int headDim, double theta, int maxPositions)
    {
        int half = headDim / 2;
        var baseFreq = new float[half];
        for (int i = 0; i < half; i++) baseFreq[i] = 1f / MathF.Pow((float)theta, 2f * i / headDim);
        switch (Type)
        {
            case "default":
                return baseFreq;
            case "linear":
                return baseFreq.Select(f => f / (float)Factor).ToArray();
            case "llama3":
            {
                double old = OriginalMaxPositions!.Value;
                double lowWavelen = old / LowFreqFactor, highWavelen = old / HighFreqFactor;
                var result = new float[half];
                for (int i = 0; i < half; i++)
                {
                    float f = baseFreq[i];
                    float wavelen = 2 * MathF.PI / f;
                    float scaled = wavelen > lowWavelen ? f / (float)Factor : f;
                    bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
                    if (medium)
                    {
                        float smooth = (float)((old / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor));
                        scaled = (1 - smooth) * scaled / (float)Factor + smooth * scaled;
                    }
                    result[i] = scaled;
                }
                return result;
            }
            case "yarn":
            {
                double factor = EffectiveYarnFactor(maxPositions);
                int original = OriginalMaxPositions ?? maxPositions;
                double CorrectionDim(double rotations) => headDim * Math.Log(original / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = CorrectionDim(BetaFast), high = CorrectionDim(BetaSlow);
                if (Truncate) (low, high) = (Math.Floor(low), Math.Ceiling(high));
                low = Math.Max(low, 0);
                high = Math.Min(high, headDim - 1);
                if (low == high) high += 0.001;
                var result = new float[half];
                for (int i = 0; i < half; i++)
                {
                    float posFreq = MathF.Pow((float)theta, 2f * i / headDim);
                    float extrapolation = 1f / posFreq, interpolation = 1f / ((float)factor * posFreq);
                    float ramp = Math.Clamp((float)((i - low) / (high - low)), 0f, 1f);
                    float extrapolationFactor = 1 - ramp;
                    result[i] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
                }
                return result;
            }
            default:
                throw new InvalidOperationException($"rope_type \"{Type}\" has no frequency function");
        }
    }

    /// <summary>
    /// The factor cos and sin are multiplied by: 1 except for yarn, where it is <c>attention_factor</c> or
    /// 0.1 ln(factor) + 1.
    /// </summary>
    public float AttentionFactor(int maxPositions)
    {
        if (Type != "yarn") return 1f;
        if (ExplicitAttentionFactor is { } explicitFactor) return (float)explicitFactor;
        double factor = EffectiveYarnFactor(maxPositions);
        return factor <= 1 ? 1f : (float)(0.1 * Math.Log(factor) + 1.0);
    }

    // transformers: with original_max_position_embeddings given, yarn's factor is max_position_embeddings / that.
    double EffectiveYarnFactor(int maxPositions) => OriginalMaxPositions is { } original ? (double)maxPositions / original : Factor;

    /// <summary>
    /// Reads <c>rope_parameters</c> / <c>rope_scaling</c> (<paramref name="field"/> names it in errors); null or a
    /// missing object is <see cref="None"/>. Types other than default, linear, llama3 and yarn are refused, as are fields
    /// that change the frequencies in ways not implemented (<c>partial_rotary_factor</c>, <c>mscale</c>).
    /// </summary>
    public static RopeScaling Parse(JsonObject? node, string field)
    {
        if (node is null) return None;
        string type = (node["rope_type"] ?? node["type"]) is JsonValue t && t.GetValueKind() == JsonValueKind.String ? t.GetValue<string>() : "default";
        double? Number(string name) => node[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<double>() : null;
        double Required(string name) => Number(name) ?? throw new InvalidDataException($"config field \"{field}.{name}\" is required for rope_type \"{type}\"");
        if (Number("partial_rotary_factor") is { } partial && partial != 1)
            throw new InvalidDataException($"config field \"{field}.partial_rotary_factor\" = {partial.ToString(CultureInfo.InvariantCulture)} is not supported");
        switch (type)
        {
            case "default":
                return None;
            case "linear":
                return new RopeScaling(type, Required("factor"));
            case "llama3":
                return new RopeScaling(type, Required("factor"), (int)Required("original_max_position_embeddings"),
                    Required("low_freq_factor"), Required("high_freq_factor"));
            case "yarn":
                foreach (string unsupported in new[] { "mscale", "mscale_all_dim" })
                    if (Number(unsupported) is not null)
                        throw new InvalidDataException($"config field \"{field}.{unsupported}\" is not supported (yarn with the default attention factor or an explicit attention_factor only)");
                return new RopeScaling(type, Required("factor"), Number("original_max_position_embeddings") is { } o ? (int)o : null,
                    BetaFast: Number("beta_fast") ?? 32, BetaSlow: Number("beta_slow") ?? 1, ExplicitAttentionFactor: Number("attention_factor"),
                    Truncate: node["truncate"] is JsonValue tr && tr.GetValueKind() == JsonValueKind.False ? false : true);
            case "dynamic":
                throw new InvalidDataException($"config field \"{field}.rope_type\" is \"dynamic\"; not supported: its frequencies depend on the " +
                    "length of each sequence (and, with a KV cache, on when each key was computed), which neither engine can reproduce exactly");
            default:
                throw new InvalidDataException($"config field \"{field}.rope_type\" is \"{type}\"; supported: default, linear, llama3, yarn");
        }
    }

    /// <summary>The <c>rope_parameters</c> object of transformers 5 for this scaling and <paramref name="theta"/>.</summary>
    public JsonObject ToJson(double theta)
    {
        var o = new JsonObject { ["rope_type"] = Type, ["rope_theta"] = theta };
        if (Type == "default") return o;
        o["factor"] = Factor;
        if (OriginalMaxPositions is { } original) o["original_max_position_embeddings"] = original;
        if (Type == "llama3") { o["low_freq_factor"] = LowFreqFactor; o["high_freq_factor"] = HighFreqFactor; }
        if (Type == "yarn")
        {
            o["beta_fast"] = BetaFast;
            o["beta_slow"] = BetaSlow;
            o["truncate"] = Truncate;
            if (ExplicitAttentionFactor is { } a) o["attention_factor"] = a;
        }
        return o;
    }
}
