using TorchSharp;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

/// <summary>
/// The model against a plain, loop-per-head float64 reimplementation of Hugging Face's Llama forward pass written
/// from the formulas (RMSNorm, RoPE pairing element i with i + head_dim/2, GQA head j → kv head j / group, causal
/// softmax attention, SwiGLU).
/// </summary>
public class LlamaReferenceTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Forward_matches_a_reference_implementation(bool tied)
    {
        var config = new LlamaConfig
        {
            VocabSize = 40, HiddenSize = 24, IntermediateSize = 40, NumHiddenLayers = 2, NumAttentionHeads = 6,
            NumKeyValueHeads = 2, MaxPositionEmbeddings = 16, RmsNormEps = 1e-5, RopeTheta = 500, TieWordEmbeddings = tied,
        };
        using var model = LlamaModel.Create(config, seed: 3);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters()) // norms away from 1 so their weights matter
                if (name.Contains("norm")) p.copy_(rand(p.shape, generator: new Generator(9)) + 0.5);
        var w = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach().to(ScalarType.Float64));
        long[] ids = [3, 17, 0, 39, 5, 5, 22, 8, 11];
        using var _ = no_grad();
        var actual = model.forward(tensor(ids).unsqueeze(0))[0];
        var expected = Reference(config, w, ids);
        double diff = (actual.to(ScalarType.Float64) - expected).abs().max().item<double>();
        Assert.True(diff < 1e-4, $"max difference {diff}");
    }

    static Tensor Rms(Tensor x, Tensor weight, double eps) => x / (x.pow(2).mean([-1L], keepdim: true) + eps).sqrt() * weight;

    static Tensor Rope(Tensor x, double theta) // x: [T, head_dim]
    {
        long t = x.shape[0], d = x.shape[1], half = d / 2;
        var result = x.clone();
        for (long p = 0; p < t; p++)
            for (long i = 0; i < half; i++)
            {
                double angle = p * Math.Pow(theta, -2.0 * i / d);
                double a = x[p, i].item<double>(), b = x[p, i + half].item<double>();
                result[p, i] = a * Math.Cos(angle) - b * Math.Sin(angle);
                result[p, i + half] = b * Math.Cos(angle) + a * Math.Sin(angle);
            }
        return result;
    }

    static Tensor Reference(LlamaConfig c, Dictionary<string, Tensor> w, long[] ids)
    {
        int t = ids.Length, hd = c.HeadDim, group = c.NumAttentionHeads / c.NumKeyValueHeads;
        var h = w["model.embed_tokens.weight"].index_select(0, tensor(ids));
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var x = Rms(h, w[p + "input_layernorm.weight"], c.RmsNormEps);
            var q = x.matmul(w[p + "self_attn.q_proj.weight"].t());
            var k = x.matmul(w[p + "self_attn.k_proj.weight"].t());
            var v = x.matmul(w[p + "self_attn.v_proj.weight"].t());
            var heads = new List<Tensor>();
            for (int head = 0; head < c.NumAttentionHeads; head++)
            {
                int kvHead = head / group;
                var qh = Rope(q[.., (head * hd)..((head + 1) * hd)], c.RopeTheta);
                var kh = Rope(k[.., (kvHead * hd)..((kvHead + 1) * hd)], c.RopeTheta);
                var vh = v[.., (kvHead * hd)..((kvHead + 1) * hd)];
                var scores = qh.matmul(kh.t()) / Math.Sqrt(hd);
                for (int i = 0; i < t; i++)
                    for (int j = i + 1; j < t; j++) scores[i, j] = double.NegativeInfinity;
                heads.Add(scores.softmax(-1).matmul(vh));
            }
            h = h + cat(heads, 1).matmul(w[p + "self_attn.o_proj.weight"].t());
            x = Rms(h, w[p + "post_attention_layernorm.weight"], c.RmsNormEps);
            var gate = x.matmul(w[p + "mlp.gate_proj.weight"].t());
            var up = x.matmul(w[p + "mlp.up_proj.weight"].t());
            h = h + (gate * gate.sigmoid() * up).matmul(w[p + "mlp.down_proj.weight"].t());
        }
        h = Rms(h, w["model.norm.weight"], c.RmsNormEps);
        return h.matmul(w[c.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"].t());
    }
}
