using VectorLm.Models;

namespace VectorLm.Sampling;

/// <summary>The shape of a Llama-architecture model, as the engine needs it (Hugging Face config.json fields).</summary>
/// <param name="VocabSize">vocab_size.</param>
/// <param name="HiddenSize">hidden_size.</param>
/// <param name="IntermediateSize">intermediate_size.</param>
/// <param name="LayerCount">num_hidden_layers.</param>
/// <param name="HeadCount">num_attention_heads.</param>
/// <param name="KvHeadCount">num_key_value_heads.</param>
/// <param name="HeadDim">head_dim (hidden_size / num_attention_heads unless set).</param>
/// <param name="RmsNormEps">rms_norm_eps.</param>
/// <param name="RopeTheta">rope_theta.</param>
/// <param name="MaxPositions">max_position_embeddings.</param>
/// <param name="TieWordEmbeddings">tie_word_embeddings: the output projection is the embedding matrix.</param>
/// <param name="RopeScaling">rope_parameters / rope_scaling; null for plain rotary embeddings.</param>
public sealed record LlamaArchitecture(int VocabSize, int HiddenSize, int IntermediateSize, int LayerCount, int HeadCount,
    int KvHeadCount, int HeadDim, float RmsNormEps, float RopeTheta, int MaxPositions, bool TieWordEmbeddings,
    RopeScaling? RopeScaling = null)
{
    /// <summary>
    /// llama.cpp's per-dimension divisors of the rotary frequencies (<c>rope_freqs.weight</c>): the plain frequency over
    /// the scaled one, which expresses linear and llama3 scaling exactly; all 1 otherwise (yarn is set by its own keys).
    /// </summary>
    public float[] RopeFrequencyFactors()
    {
        var scaling = RopeScaling ?? Models.RopeScaling.None;
        if (scaling.Type is not ("linear" or "llama3")) return Enumerable.Repeat(1f, HeadDim / 2).ToArray();
        var plain = Models.RopeScaling.None.InverseFrequencies(HeadDim, RopeTheta, MaxPositions);
        var scaled = scaling.InverseFrequencies(HeadDim, RopeTheta, MaxPositions);
        return plain.Select((p, i) => p / scaled[i]).ToArray();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent field.</summary>
    public void Validate()
    {
        void Positive(int v, string name) { if (v <= 0) throw new ArgumentException($"{name} must be positive, got {v}."); }
        Positive(VocabSize, nameof(VocabSize)); Positive(HiddenSize, nameof(HiddenSize)); Positive(IntermediateSize, nameof(IntermediateSize));
        Positive(LayerCount, nameof(LayerCount)); Positive(HeadCount, nameof(HeadCount)); Positive(KvHeadCount, nameof(KvHeadCount));
        Positive(HeadDim, nameof(HeadDim)); Positive(MaxPositions, nameof(MaxPositions));
        if (HeadCount % KvHeadCount != 0) throw new ArgumentException($"HeadCount {HeadCount} is not a multiple of KvHeadCount {KvHeadCount}.");
        if (HeadDim % 2 != 0) throw new ArgumentException($"HeadDim {HeadDim} must be even for rotary embeddings.");
    }
}
