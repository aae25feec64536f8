using VectorLm.Native;
using VectorLm.Tokenization;

namespace VectorLm.Sampling;

/// <summary>Where a llama.cpp tensor's values come from.</summary>
/// <param name="GgufName">llama.cpp's name (blk.N.attn_q.weight).</param>
/// <param name="SourceName">Hugging Face parameter name, or null for a constant tensor.</param>
/// <param name="PermuteHeads">
/// Heads of a q/k projection whose rows go from Hugging Face's rotate-half layout to GGUF's interleaved pairs; 0 for none.
/// </param>
/// <param name="Constant">The value of every element of a tensor without a source (0 for biases, 1 for scales).</param>
/// <param name="Values">The values of a tensor without a source that is not constant (rope_freqs), or null.</param>
internal sealed record TensorSource(string GgufName, string? SourceName, int PermuteHeads, float Constant, float[]? Values = null);

/// <summary>
/// The mapping between Hugging Face Llama parameters and llama.cpp's GGUF tensors and metadata, as
/// convert_hf_to_gguf.py does it, but in memory.
/// </summary>
internal static class LlamaGgufLayout
{
    /// <summary>The GGUF tensors with a trainer source, keyed by GGUF name.</summary>
    public static Dictionary<string, TensorSource> SourcedTensors(LlamaArchitecture arch, IReadOnlyCollection<string> parameterNames)
    {
        var map = new Dictionary<string, TensorSource>(StringComparer.Ordinal);
        void Add(string gguf, string hf, int permute = 0) => map.Add(gguf, new TensorSource(gguf, hf, permute, 0));
        Add("token_embd.weight", "model.embed_tokens.weight");
        Add("output_norm.weight", "model.norm.weight");
        // Tied models have no lm_head: llama.cpp still gets an output matrix, a copy of the embeddings.
        Add("output.weight", !arch.TieWordEmbeddings && parameterNames.Contains("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight");
        for (int i = 0; i < arch.LayerCount; i++)
        {
            string hf = $"model.layers.{i}.", blk = $"blk.{i}.";
            Add(blk + "attn_norm.weight", hf + "input_layernorm.weight");
            Add(blk + "attn_q.weight", hf + "self_attn.q_proj.weight", arch.HeadCount);
            Add(blk + "attn_k.weight", hf + "self_attn.k_proj.weight", arch.KvHeadCount);
            Add(blk + "attn_v.weight", hf + "self_attn.v_proj.weight");
            Add(blk + "attn_output.weight", hf + "self_attn.o_proj.weight");
            Add(blk + "ffn_norm.weight", hf + "post_attention_layernorm.weight");
            Add(blk + "ffn_gate.weight", hf + "mlp.gate_proj.weight");
            Add(blk + "ffn_up.weight", hf + "mlp.up_proj.weight");
            Add(blk + "ffn_down.weight", hf + "mlp.down_proj.weight");
            // Biases where the checkpoint has them (Qwen2's q/k/v; Llama's attention_bias and mlp_bias); q/k rows are
            // permuted like their weights.
            void AddBias(string gguf, string name, int permute = 0)
            {
                if (parameterNames.Contains(hf + name)) Add(blk + gguf, hf + name, permute);
            }
            AddBias("attn_q.bias", "self_attn.q_proj.bias", arch.HeadCount);
            AddBias("attn_k.bias", "self_attn.k_proj.bias", arch.KvHeadCount);
            AddBias("attn_v.bias", "self_attn.v_proj.bias");
            AddBias("attn_output.bias", "self_attn.o_proj.bias");
            AddBias("ffn_gate.bias", "mlp.gate_proj.bias");
            AddBias("ffn_up.bias", "mlp.up_proj.bias");
            AddBias("ffn_down.bias", "mlp.down_proj.bias");
        }
        var used = map.Values.Select(s => s.SourceName).ToHashSet(StringComparer.Ordinal);
        var unmapped = parameterNames.Where(n => !used.Contains(n)).ToList();
        if (unmapped.Count > 0)
            throw new ArgumentException($"Trainer parameters with no llama.cpp tensor: {string.Join(", ", unmapped.Take(5))}" +
                (unmapped.Count > 5 ? $" and {unmapped.Count - 5} more" : "") + ". The engine supports the Llama family (Llama, Mistral, Qwen2).");
        var missing = used.Where(n => !parameterNames.Contains(n!)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"The trainer model lacks parameters the engine needs: {string.Join(", ", missing.Take(5))}.");
        return map;
    }

    /// <summary>
    /// What llama.cpp tensors without a trainer source must hold: its Llama graph creates optional biases (0),
    /// rope_freqs (the frequency divisors of linear/llama3 scaling, else 1; once per layer under one name) and scales
    /// (1). Null for a tensor the engine does not know.
    /// </summary>
    public static TensorSource? ConstantTensor(string ggufName, LlamaArchitecture arch)
    {
        if (ggufName.EndsWith(".bias", StringComparison.Ordinal)) return new TensorSource(ggufName, null, 0, 0f);
        if (ggufName == "rope_freqs.weight") return new TensorSource(ggufName, null, 0, 1f, arch.RopeFrequencyFactors());
        if (ggufName.EndsWith(".scale", StringComparison.Ordinal)
            || ggufName.EndsWith("_scale", StringComparison.Ordinal))
            return new TensorSource(ggufName, null, 0, 1f);
        return null;
    }

    /// <summary>GGUF dimensions (ne, fastest first) of a Hugging Face tensor shape.</summary>
    public static long[] GgufDimensions(long[] torchShape) => torchShape.Reverse().ToArray();

    /// <summary>Writes the architecture and vocabulary metadata llama.cpp reads when it builds a Llama model.</summary>
    public static void WriteMetadata(GgufContextHandle gguf, LlamaArchitecture arch, ITokenCodec vocab)
    {
        GgufNative.SetString(gguf, "general.architecture", "llama");
        GgufNative.SetString(gguf, "general.name", "vectorlm-engine");
        GgufNative.SetUInt32(gguf, "llama.context_length", (uint)arch.MaxPositions);
        GgufNative.SetUInt32(gguf, "llama.embedding_length", (uint)arch.HiddenSize);
        GgufNative.SetUInt32(gguf, "llama.block_count", (uint)arch.LayerCount);
        GgufNative.SetUInt32(gguf, "llama.feed_forward_length", (uint)arch.IntermediateSize);
        GgufNative.SetUInt32(gguf, "llama.attention.head_count", (uint)arch.HeadCount);
        GgufNative.SetUInt32(gguf, "llama.attention.head_count_kv", (uint)arch.KvHeadCount);
        GgufNative.SetUInt32(gguf, "llama.attention.key_length", (uint)arch.HeadDim);
        GgufNative.SetUInt32(gguf, "llama.attention.value_length", (uint)arch.HeadDim);
        GgufNative.SetFloat32(gguf, "llama.attention.layer_norm_rms_epsilon", arch.RmsNormEps);
        GgufNative.SetFloat32(gguf, "llama.rope.freq_base", arch.RopeTheta);
        GgufNative.SetUInt32(gguf, "llama.rope.dimension_count", (uint)arch.HeadDim);
        WriteRopeScaling(gguf, arch);
        GgufNative.SetUInt32(gguf, "llama.vocab_size", (uint)arch.VocabSize);

        WriteVocabulary(gguf, vocab.Vocabulary.PaddedTo(arch.VocabSize));
    }

    // Linear and llama3 scaling are per-dimension divisors in rope_freqs.weight (see ConstantTensor); yarn is llama.cpp's
    // own YaRN with the same correction range and attention factor, when the betas and factor are the defaults it uses.
    static void WriteRopeScaling(GgufContextHandle gguf, LlamaArchitecture arch)
    {
        if (arch.RopeScaling is not { Type: "yarn" } yarn) return;
        if (yarn.BetaFast != 32 || yarn.BetaSlow != 1 || yarn.ExplicitAttentionFactor is not null || !yarn.Truncate)
            throw new NotSupportedException("The llama.cpp engine supports yarn RoPE with beta_fast 32, beta_slow 1, truncate and the default " +
                "attention factor only; use the torch engine (EngineOptions.Backend = Torch) for this model.");
        double factor = yarn.OriginalMaxPositions is { } original ? (double)arch.MaxPositions / original : yarn.Factor;
        GgufNative.SetString(gguf, "llama.rope.scaling.type", "yarn");
        GgufNative.SetFloat32(gguf, "llama.rope.scaling.factor", (float)factor);
        GgufNative.SetUInt32(gguf, "llama.rope.scaling.original_context_length", (uint)(yarn.OriginalMaxPositions ?? arch.MaxPositions));
    }

    /// <summary>Writes <c>tokenizer.ggml.*</c>: tokens, types, scores (llama) or merges and pre-tokenizer name (gpt2), special ids.</summary>
    static void WriteVocabulary(GgufContextHandle gguf, GgufVocabulary v)
    {
        GgufNative.SetString(gguf, "tokenizer.ggml.model", v.Model);
        if (v.Pre is not null) GgufNative.SetString(gguf, "tokenizer.ggml.pre", v.Pre);
        GgufNative.SetStringArray(gguf, "tokenizer.ggml.tokens", v.Tokens);
        GgufNative.SetInt32Array(gguf, "tokenizer.ggml.token_type", v.Types.ToArray());
        if (v.Merges is not null) GgufNative.SetStringArray(gguf, "tokenizer.ggml.merges", v.Merges);
        else GgufNative.SetFloat32Array(gguf, "tokenizer.ggml.scores", v.Scores.ToArray());
        if (v.BosId >= 0) GgufNative.SetUInt32(gguf, "tokenizer.ggml.bos_token_id", (uint)v.BosId);
        if (v.EosId >= 0) GgufNative.SetUInt32(gguf, "tokenizer.ggml.eos_token_id", (uint)v.EosId);
        if (v.UnkId >= 0) GgufNative.SetUInt32(gguf, "tokenizer.ggml.unknown_token_id", (uint)v.UnkId);
        if (v.PadId >= 0) GgufNative.SetUInt32(gguf, "tokenizer.ggml.padding_token_id", (uint)v.PadId);
        GgufNative.SetBool(gguf, "tokenizer.ggml.add_bos_token", v.AddBos && v.BosId >= 0);
        GgufNative.SetBool(gguf, "tokenizer.ggml.add_eos_token", false);
        GgufNative.SetBool(gguf, "tokenizer.ggml.add_space_prefix", v.AddSpacePrefix);
    }

    public static GgmlType ToGgml(EngineWeightType type) => type switch
    {
        EngineWeightType.F32 => GgmlType.F32,
        EngineWeightType.F16 => GgmlType.F16,
        EngineWeightType.BF16 => GgmlType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };
}
