using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>
/// Picks the next token of every row on the device, with no host synchronisation: greedy, or temperature with
/// top-k / top-p / min-p over a candidate set (<c>topk</c>, not a full sort) and a Gumbel-max draw.
/// </summary>
/// <remarks>
/// The randomness is a counter-based hash, not a generator: the uniform for (row key, step, token id) is SplitMix64 of
/// those three numbers, computed with integer tensor ops. A row's key comes from (seed, prompt index, sample index), so a
/// sample's tokens do not depend on its batch, its slot or the world size, and one launch serves every row (as SGLang's
/// <c>multinomial_with_seed</c>). Keying the noise by token id rather than by candidate rank keeps a draw independent of
/// how many candidates were kept.
/// </remarks>
internal sealed class TorchTokenSampler : IDisposable
{
    readonly int _vocab, _topPCandidates;
    readonly Tensor _m1, _m2, _golden, _idMul, _s30, _s27, _s31, _s40, _k30, _k27, _k31, _k24, _vocabIds;

    public TorchTokenSampler(int vocabSize, int topPCandidates, Device device)
    {
        _vocab = vocabSize;
        _topPCandidates = topPCandidates;
        static Tensor C(long v, Device d) => tensor(v, ScalarType.Int64, d).DetachFromDisposeScope();
        _m1 = C(unchecked((long)0xBF58476D1CE4E5B9UL), device);
        _m2 = C(unchecked((long)0x94D049BB133111EBUL), device);
        _golden = C(unchecked((long)0x9E3779B97F4A7C15UL), device);
        _idMul = C(unchecked((long)0xD1B54A32D192ED03UL), device);
        _s30 = C(30, device); _s27 = C(27, device); _s31 = C(31, device); _s40 = C(40, device);
        // Masks turn arithmetic right shifts of int64 into logical ones.
        _k30 = C((1L << 34) - 1, device); _k27 = C((1L << 37) - 1, device); _k31 = C((1L << 33) - 1, device); _k24 = C((1L << 24) - 1, device);
        _vocabIds = arange(vocabSize, ScalarType.Int64, device).unsqueeze(0).DetachFromDisposeScope();
    }

    Tensor Mix(Tensor z)
    {
        z = z.bitwise_xor(z.bitwise_right_shift(_s30).bitwise_and_(_k30)).mul_(_m1);
        z = z.bitwise_xor(z.bitwise_right_shift(_s27).bitwise_and_(_k27)).mul_(_m2);
        return z.bitwise_xor(z.bitwise_right_shift(_s31).bitwise_and_(_k31));
    }

    /// <summary>Gumbel(0, 1) noise [rows, ids.shape[1]] for token <paramref name="ids"/> of each row's (key, step).</summary>
    Tensor Gumbel(Tensor keys, Tensor steps, Tensor ids)
    {
        var rowBase = Mix(keys + steps * _golden).unsqueeze(1);
        var bits = Mix(ids * _idMul + rowBase).bitwise_right_shift(_s40).bitwise_and_(_k24);
        // Uniform in (0, 1) from 24 bits, then -log(-log u).
        return bits.to(ScalarType.Float32).add_(0.5).mul_(1.0 / (1 << 24)).log_().neg_().log_().neg_();
    }

    /// <summary>
    /// Token [rows] (int64) and its log-probability under the unmodified softmax of <paramref name="logits"/> [rows, vocab]
    /// (float32), for rows keyed by <paramref name="keys"/> at per-row step <paramref name="steps"/>.
    /// </summary>
    public (Tensor Token, Tensor LogProb) Sample(Tensor logits, Tensor keys, Tensor steps, SamplingParams p)
    {
        var lse = logits.logsumexp(-1, keepdim: true);
        Tensor token;
        if (p.Temperature == 0) token = logits.argmax(-1, keepdim: true);
        else
        {
            var scaled = p.Temperature == 1 ? logits : logits / p.Temperature;
            Tensor logWeights, ids;
            bool candidates = p.TopK > 0 && p.TopK < _vocab || p.TopP < 1 && _topPCandidates < _vocab;
            if (candidates)
            {
                int count = Math.Min(_vocab, p.TopK > 0 ? p.TopK : _topPCandidates);
                (logWeights, ids) = scaled.topk(count, -1, largest: true, sorted: true);
            }
            else if (p.TopP < 1 || p.TopK > 0)
                (logWeights, ids) = scaled.sort(-1, descending: true);   // the candidate set is the whole vocabulary
            else
                (logWeights, ids) = (scaled, _vocabIds);
            bool sorted = !ReferenceEquals(ids, _vocabIds);
            var keep = p.MinP > 0
                ? logWeights >= (sorted ? logWeights.narrow(-1, 0, 1) : logWeights.amax([-1L], keepdim: true)) + MathF.Log(p.MinP)
                : null;
            if (p.TopP < 1)
            {
                // Top-p over the temperature distribution (renormalised over the top k when top-k is on), as the llama.cpp engine.
                var normaliser = p.TopK > 0 ? logWeights.logsumexp(-1, keepdim: true) : scaled.logsumexp(-1, keepdim: true);
                var probs = (logWeights - normaliser).exp_();
                var inNucleus = (probs.cumsum(-1) - probs) < p.TopP;
                keep = keep is null ? inNucleus : keep.logical_and_(inNucleus);
            }
            if (keep is not null) logWeights = logWeights.masked_fill(keep.logical_not(), float.NegativeInfinity);
            var choice = (logWeights + Gumbel(keys, steps, ids)).argmax(-1, keepdim: true);
            token = sorted ? ids.gather(-1, choice) : choice;
        }
        var logProb = logits.gather(-1, token) - lse;
        return (token.squeeze(-1), logProb.squeeze(-1));
    }

    public void Dispose()
    {
        foreach (var t in new[] { _m1, _m2, _golden, _idMul, _s30, _s27, _s31, _s40, _k30, _k27, _k31, _k24, _vocabIds }) t.Dispose();
    }
}
