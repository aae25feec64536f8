using System.Text;
using TorchSharp;
using VectorLm.Sampling;
using static TorchSharp.torch;

namespace VectorLm.Sampling.Tests;

/// <summary>A byte-level SentencePiece-style vocabulary: 0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;, 3..258 bytes; spaces as U+2581.</summary>
internal sealed class ByteCodec : ITokenCodec
{
    public const int Size = 259;

    public ByteCodec()
    {
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        for (int b = 0; b < 256; b++) pieces.Add($"<0x{b:X2}>");
        Pieces = pieces;
        Scores = Enumerable.Repeat(0f, Size).ToArray();
        TokenTypes = [2, 3, 3, .. Enumerable.Repeat(6, 256)];
    }

    public IReadOnlyList<string> Pieces { get; }
    public IReadOnlyList<float> Scores { get; }
    public IReadOnlyList<int> TokenTypes { get; }
    public int BosId => 1;
    public int EosId => 2;
    public int UnkId => 0;

    public int[] Encode(string text) => Encoding.UTF8.GetBytes(text.Replace(' ', '\u2581')).Select(b => b + 3).ToArray();

    public string Decode(IReadOnlyList<int> ids) =>
        Encoding.UTF8.GetString(ids.Where(i => i >= 3).Select(i => (byte)(i - 3)).ToArray()).Replace('\u2581', ' ');
}

/// <summary>
/// A small Llama in plain TorchSharp with Hugging Face parameter names and rotate-half RoPE: the trainer-side reference
/// the engine is checked against (the foundation's LlamaModel follows the same conventions).
/// </summary>
internal sealed class ReferenceLlama : IDisposable
{
    public ReferenceLlama(LlamaArchitecture arch, long seed, float std = 0.1f)
    {
        Arch = arch;
        var g = new Generator((ulong)seed);
        Tensor W(params long[] shape) => torch.randn(shape, generator: g) * std;
        int q = arch.HeadCount * arch.HeadDim, kv = arch.KvHeadCount * arch.HeadDim;
        Parameters["model.embed_tokens.weight"] = W(arch.VocabSize, arch.HiddenSize);
        for (int i = 0; i < arch.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            Parameters[p + "input_layernorm.weight"] = 1 + W(arch.HiddenSize);
            Parameters[p + "self_attn.q_proj.weight"] = W(q, arch.HiddenSize);
            Parameters[p + "self_attn.k_proj.weight"] = W(kv, arch.HiddenSize);
            Parameters[p + "self_attn.v_proj.weight"] = W(kv, arch.HiddenSize);
            Parameters[p + "self_attn.o_proj.weight"] = W(arch.HiddenSize, q);
            Parameters[p + "post_attention_layernorm.weight"] = 1 + W(arch.HiddenSize);
            Parameters[p + "mlp.gate_proj.weight"] = W(arch.IntermediateSize, arch.HiddenSize);
            Parameters[p + "mlp.up_proj.weight"] = W(arch.IntermediateSize, arch.HiddenSize);
            Parameters[p + "mlp.down_proj.weight"] = W(arch.HiddenSize, arch.IntermediateSize);
        }
        Parameters["model.norm.weight"] = 1 + W(arch.HiddenSize);
        if (!arch.TieWordEmbeddings) Parameters["lm_head.weight"] = W(arch.VocabSize, arch.HiddenSize);
    }

    public static LlamaArchitecture TinyArch(bool tied = false) =>
        new(ByteCodec.Size, 64, 128, 2, 4, 2, 16, 1e-5f, 10000f, 256, tied);

    public LlamaArchitecture Arch { get; }

    public Dictionary<string, Tensor> Parameters { get; } = new(StringComparer.Ordinal);

    /// <summary>Logits [batch, seq, vocab] of token ids [batch, seq].</summary>
    public Tensor Forward(Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var a = Arch;
        long b = ids.shape[0], s = ids.shape[1];
        var x = Parameters["model.embed_tokens.weight"].index_select(0, ids.flatten()).view(b, s, a.HiddenSize);
        var inv = torch.pow(a.RopeTheta, -torch.arange(0, a.HeadDim, 2, dtype: ScalarType.Float32) / a.HeadDim);
        var freqs = torch.outer(torch.arange(s, dtype: ScalarType.Float32), inv);
        var emb = torch.cat([freqs, freqs], -1);
        Tensor cos = emb.cos(), sin = emb.sin();
        Tensor Rope(Tensor t)
        {
            var half = a.HeadDim / 2;
            var rotated = torch.cat([-t[.., .., .., half..], t[.., .., .., ..half]], -1);
            return t * cos + rotated * sin;
        }
        var mask = torch.ones(s, s).triu(1).to(ScalarType.Bool);
        for (int i = 0; i < a.LayerCount; i++)
        {
            string p = $"model.layers.{i}.";
            var h = RmsNorm(x, Parameters[p + "input_layernorm.weight"]);
            var q = Rope(h.matmul(Parameters[p + "self_attn.q_proj.weight"].t()).view(b, s, a.HeadCount, a.HeadDim).transpose(1, 2));
            var k = Rope(h.matmul(Parameters[p + "self_attn.k_proj.weight"].t()).view(b, s, a.KvHeadCount, a.HeadDim).transpose(1, 2));
            var v = h.matmul(Parameters[p + "self_attn.v_proj.weight"].t()).view(b, s, a.KvHeadCount, a.HeadDim).transpose(1, 2);
            int rep = a.HeadCount / a.KvHeadCount;
            k = k.repeat_interleave(rep, 1);
            v = v.repeat_interleave(rep, 1);
            var scores = q.matmul(k.transpose(-2, -1)) / MathF.Sqrt(a.HeadDim);
            scores = scores.masked_fill(mask, float.NegativeInfinity).softmax(-1);
            var o = scores.matmul(v).transpose(1, 2).reshape(b, s, a.HeadCount * a.HeadDim);
            x = x + o.matmul(Parameters[p + "self_attn.o_proj.weight"].t());
            h = RmsNorm(x, Parameters[p + "post_attention_layernorm.weight"]);
            var mlp = torch.nn.functional.silu(h.matmul(Parameters[p + "mlp.gate_proj.weight"].t())) * h.matmul(Parameters[p + "mlp.up_proj.weight"].t());
            x = x + mlp.matmul(Parameters[p + "mlp.down_proj.weight"].t());
        }
        x = RmsNorm(x, Parameters["model.norm.weight"]);
        var head = Parameters.GetValueOrDefault("lm_head.weight") ?? Parameters["model.embed_tokens.weight"];
        return x.matmul(head.t()).MoveToOuterDisposeScope();
    }

    Tensor RmsNorm(Tensor x, Tensor w) => x * torch.rsqrt(x.pow(2).mean([-1], keepdim: true) + Arch.RmsNormEps) * w;

    /// <summary>Greedy continuation of <paramref name="prompt"/> by recomputing the prefix each step.</summary>
    public List<int> Greedy(int[] prompt, int steps)
    {
        var ids = prompt.Select(i => (long)i).ToList();
        var result = new List<int>();
        using var _ = torch.no_grad();
        for (int t = 0; t < steps; t++)
        {
            using var scope = torch.NewDisposeScope();
            var logits = Forward(torch.tensor(ids.ToArray(), [1, ids.Count]));
            int next = (int)logits[0, -1].argmax().item<long>();
            result.Add(next);
            ids.Add(next);
        }
        return result;
    }

    public LlamaSamplingEngine CreateEngine(EngineOptions? options = null, TrainerContext? trainer = null) =>
        LlamaSamplingEngine.Create(trainer ?? TrainerContext.SingleProcess(), Arch, () => Parameters, new ByteCodec(), Forward,
            options ?? new EngineOptions { ContextLength = 128, MaxSequences = 8, Threads = 1 });

    public TorchSamplingEngine CreateTorchEngine(EngineOptions? options = null, TrainerContext? trainer = null) =>
        TorchSamplingEngine.Create(trainer ?? TrainerContext.SingleProcess(), Arch, () => Parameters, new ByteCodec(), Forward,
            options ?? new EngineOptions { ContextLength = 128, MaxSequences = 8, WeightType = EngineWeightType.F32 });

    public void Dispose()
    {
        foreach (var t in Parameters.Values) t.Dispose();
    }
}
