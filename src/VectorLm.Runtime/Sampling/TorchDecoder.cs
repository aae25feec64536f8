using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VectorLm.Sampling;

/// <summary>
/// The torch engine's copy of a Llama model, laid out for decoding, and its KV cache. Every tensor here is created
/// once (detached from any caller's DisposeScope) and then only written in place: a weight swap is one pass of
/// device-to-device copies into the same buffers, and a decode step writes keys/values at each sequence's position.
/// </summary>
/// <remarks>
/// <para>Layout per layer: fused <c>qkv</c> [(H + 2·KV)·D, hidden], <c>o</c>, fused <c>gate_up</c> [2·F, hidden],
/// <c>down</c>; q/k rows are permuted per head from Hugging Face's rotate-half pairing (i, i + D/2) to adjacent pairs
/// (2i, 2i + 1), so rotary embedding is one complex multiply (q·k is unchanged: both get the same permutation).
/// Biases, where the checkpoint has them (Qwen2's q/k/v, Llama's attention_bias and mlp_bias), are fused the same way
/// (the q/k bias with the same row permutation) and enter the matmuls as <c>addmm</c> inputs; RoPE scaling lives in
/// the rotary table (<see cref="BuildRope"/>).</para>
/// <para>RMSNorm is a layer norm over <c>[x, -x]</c>: its mean is 0 and its variance mean(x²), so the first half is
/// exactly x / sqrt(mean(x²) + eps) · w, in one fused kernel (TorchSharp has no rms_norm); the norm weight is kept
/// duplicated ([w, w]) for it.</para>
/// </remarks>
internal sealed class TorchDecoder : IDisposable
{
    sealed class Layer
    {
        public required Tensor Qkv, O, GateUp, Down, InputNorm, PostNorm;
        public required Tensor QkvT, OT, GateUpT, DownT;   // transposed views for matmul
        public Tensor? QkvBias, OBias, GateUpBias, DownBias;
    }

    readonly LlamaArchitecture _a;
    readonly int _qDim, _kvDim, _groups;
    readonly Layer[] _layers;
    readonly Tensor _embed, _head, _headT, _finalNorm, _rope;
    readonly List<Tensor> _owned = new();
    Tensor[]? _cache;   // per layer [2, Slots, KV, Context, D]
    Tensor[]? _cacheRows;   // per layer, the same memory as rows [2·Slots·KV·Context, D] (decode writes)
    (int Batch, int Span, Tensor[] Keys, Tensor[] Values)? _spanViews;   // per layer, the attended part of the cache

    // parameters: which biases exist (their values come with CopyWeights).
    public TorchDecoder(LlamaArchitecture arch, IReadOnlyDictionary<string, Tensor> parameters, Device device, ScalarType dtype, int contextLength, int slots)
    {
        arch.Validate();
        _a = arch;
        Device = device;
        DType = dtype;
        ContextLength = contextLength;
        Slots = slots;
        _qDim = arch.HeadCount * arch.HeadDim;
        _kvDim = arch.KvHeadCount * arch.HeadDim;
        _groups = arch.HeadCount / arch.KvHeadCount;
        using var scope = NewDisposeScope();
        Tensor New(params long[] shape) => Keep(empty(shape, dtype, device));
        _embed = New(arch.VocabSize, arch.HiddenSize);
        _head = arch.TieWordEmbeddings ? _embed : New(arch.VocabSize, arch.HiddenSize);
        _headT = Keep(_head.t());
        _finalNorm = New(2 * arch.HiddenSize);
        _layers = new Layer[arch.LayerCount];
        for (int i = 0; i < _layers.Length; i++)
        {
            var qkv = New(_qDim + 2 * _kvDim, arch.HiddenSize);
            var o = New(arch.HiddenSize, _qDim);
            var gateUp = New(2 * arch.IntermediateSize, arch.HiddenSize);
            var down = New(arch.HiddenSize, arch.IntermediateSize);
            bool Has(string name) => parameters.ContainsKey($"model.layers.{i}.{name}.bias");
            _layers[i] = new Layer
            {
                Qkv = qkv, O = o, GateUp = gateUp, Down = down,
                InputNorm = New(2 * arch.HiddenSize), PostNorm = New(2 * arch.HiddenSize),
                QkvT = Keep(qkv.t()), OT = Keep(o.t()), GateUpT = Keep(gateUp.t()), DownT = Keep(down.t()),
                QkvBias = Has("self_attn.q_proj") ? New(_qDim + 2 * _kvDim) : null,
                OBias = Has("self_attn.o_proj") ? New(arch.HiddenSize) : null,
                GateUpBias = Has("mlp.gate_proj") ? New(2 * arch.IntermediateSize) : null,
                DownBias = Has("mlp.down_proj") ? New(arch.HiddenSize) : null,
            };
        }
        _rope = Keep(BuildRope(arch, contextLength, device));
        WeightBytes = _owned.Where(t => t.is_contiguous() && t.dtype == dtype && !ReferenceEquals(t, _rope)).Sum(t => t.NumberOfElements * t.ElementSize);
    }

    Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        _owned.Add(t);
        return t;
    }

    public Device Device { get; }
    public ScalarType DType { get; }
    public int ContextLength { get; }
    public int Slots { get; }
    public long WeightBytes { get; }
    public bool HoldsCache => _cache is not null;

    /// <summary>
    /// (cos + i·sin) × attention factor of position × frequency, complex64 [context, D/2]: the frequencies and factor of
    /// the model's RoPE scaling, angles in float64, as the trainer model computes its tables.
    /// </summary>
    static Tensor BuildRope(LlamaArchitecture a, int context, Device device)
    {
        using var scope = NewDisposeScope();
        var scaling = a.RopeScaling ?? Models.RopeScaling.None;
        var invFreq = tensor(scaling.InverseFrequencies(a.HeadDim, a.RopeTheta, a.MaxPositions)).to(ScalarType.Float64);
        var angles = outer(arange(0, context, dtype: ScalarType.Float64), invFreq);
        double factor = scaling.AttentionFactor(a.MaxPositions);
        return complex(angles.cos().mul_(factor).to(ScalarType.Float32), angles.sin().mul_(factor).to(ScalarType.Float32)).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Copies the trainer's parameters (Hugging Face names) into the decoding layout: one on-device copy (with the
    /// dtype conversion) per source tensor. Shapes are checked first, so a bad dictionary changes nothing.
    /// </summary>
    public void CopyWeights(IReadOnlyDictionary<string, Tensor> p)
    {
        var a = _a;
        Tensor Get(string name, params long[] shape)
        {
            if (!p.TryGetValue(name, out var t)) throw new ArgumentException($"Parameter \"{name}\" is missing.");
            if (!t.shape.SequenceEqual(shape))
                throw new ArgumentException($"Parameter \"{name}\" has shape [{string.Join(", ", t.shape)}]; expected [{string.Join(", ", shape)}].");
            return t;
        }
        // Resolve everything before the first write.
        var embed = Get("model.embed_tokens.weight", a.VocabSize, a.HiddenSize);
        var head = a.TieWordEmbeddings ? null : Get("lm_head.weight", a.VocabSize, a.HiddenSize);
        var norm = Get("model.norm.weight", a.HiddenSize);
        var layers = Enumerable.Range(0, a.LayerCount).Select(i =>
        {
            string n = $"model.layers.{i}.";
            return (Q: Get(n + "self_attn.q_proj.weight", _qDim, a.HiddenSize), K: Get(n + "self_attn.k_proj.weight", _kvDim, a.HiddenSize),
                V: Get(n + "self_attn.v_proj.weight", _kvDim, a.HiddenSize), O: Get(n + "self_attn.o_proj.weight", a.HiddenSize, _qDim),
                Gate: Get(n + "mlp.gate_proj.weight", a.IntermediateSize, a.HiddenSize), Up: Get(n + "mlp.up_proj.weight", a.IntermediateSize, a.HiddenSize),
                Down: Get(n + "mlp.down_proj.weight", a.HiddenSize, a.IntermediateSize),
                InNorm: Get(n + "input_layernorm.weight", a.HiddenSize), PostNorm: Get(n + "post_attention_layernorm.weight", a.HiddenSize),
                QBias: _layers[i].QkvBias is null ? null : Get(n + "self_attn.q_proj.bias", _qDim),
                KBias: _layers[i].QkvBias is null ? null : Get(n + "self_attn.k_proj.bias", _kvDim),
                VBias: _layers[i].QkvBias is null ? null : Get(n + "self_attn.v_proj.bias", _kvDim),
                OBias: _layers[i].OBias is null ? null : Get(n + "self_attn.o_proj.bias", a.HiddenSize),
                GateBias: _layers[i].GateUpBias is null ? null : Get(n + "mlp.gate_proj.bias", a.IntermediateSize),
                UpBias: _layers[i].GateUpBias is null ? null : Get(n + "mlp.up_proj.bias", a.IntermediateSize),
                DownBias: _layers[i].DownBias is null ? null : Get(n + "mlp.down_proj.bias", a.HiddenSize));
        }).ToList();

        using var _ = no_grad();
        using var scope = NewDisposeScope();
        int d = a.HeadDim, hidden = a.HiddenSize, ffn = a.IntermediateSize;
        _embed.copy_(embed);
        if (head is not null) _head.copy_(head);
        CopyNorm(_finalNorm, norm);
        for (int i = 0; i < layers.Count; i++)
        {
            var (src, dst) = (layers[i], _layers[i]);
            CopyRotary(dst.Qkv.narrow(0, 0, _qDim), src.Q, a.HeadCount, d, hidden);
            CopyRotary(dst.Qkv.narrow(0, _qDim, _kvDim), src.K, a.KvHeadCount, d, hidden);
            dst.Qkv.narrow(0, _qDim + _kvDim, _kvDim).copy_(src.V);
            dst.O.copy_(src.O);
            dst.GateUp.narrow(0, 0, ffn).copy_(src.Gate);
            dst.GateUp.narrow(0, ffn, ffn).copy_(src.Up);
            dst.Down.copy_(src.Down);
            CopyNorm(dst.InputNorm, src.InNorm);
            CopyNorm(dst.PostNorm, src.PostNorm);
            if (dst.QkvBias is { } qkvBias)
            {
                CopyRotary(qkvBias.narrow(0, 0, _qDim).unsqueeze(1), src.QBias!.unsqueeze(1), a.HeadCount, d, 1);
                CopyRotary(qkvBias.narrow(0, _qDim, _kvDim).unsqueeze(1), src.KBias!.unsqueeze(1), a.KvHeadCount, d, 1);
                qkvBias.narrow(0, _qDim + _kvDim, _kvDim).copy_(src.VBias!);
            }
            dst.OBias?.copy_(src.OBias!);
            if (dst.GateUpBias is { } gateUpBias)
            {
                gateUpBias.narrow(0, 0, ffn).copy_(src.GateBias!);
                gateUpBias.narrow(0, ffn, ffn).copy_(src.UpBias!);
            }
            dst.DownBias?.copy_(src.DownBias!);
        }
    }

    // Row 2i + j of each head takes Hugging Face row j·D/2 + i.
    static void CopyRotary(Tensor dst, Tensor src, int heads, int d, int hidden) =>
        dst.view(heads, d / 2, 2, hidden).copy_(src.view(heads, 2, d / 2, hidden).transpose(1, 2));

    // The layer norm over [x, -x] takes the weight twice.
    static void CopyNorm(Tensor dst, Tensor src) => dst.view(2, -1).copy_(src.unsqueeze(0));

    /// <summary>Allocates the KV cache if it is not held (detached: it outlives the caller's DisposeScope).</summary>
    public void EnsureCache()
    {
        if (_cache is not null) return;
        var cache = new Tensor[_a.LayerCount];
        try
        {
            for (int i = 0; i < cache.Length; i++)
                // Zeros, not empty: masked positions get weight 0, and 0 x NaN garbage would still be NaN.
                cache[i] = zeros([2, Slots, _a.KvHeadCount, ContextLength, _a.HeadDim], DType, Device).DetachFromDisposeScope();
        }
        catch
        {
            foreach (var t in cache) t?.Dispose();
            throw;
        }
        _cache = cache;
        _cacheRows = cache.Select(c => c.view(-1, _a.HeadDim).DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Frees the KV cache.</summary>
    public void ReleaseCache()
    {
        if (_cache is null) return;
        DropSpanViews();
        foreach (var t in _cacheRows!.Concat(_cache)) t.Dispose();
        _cache = null;
        _cacheRows = null;
    }

    void DropSpanViews()
    {
        if (_spanViews is not { } views) return;
        foreach (var t in views.Keys.Concat(views.Values)) t.Dispose();
        _spanViews = null;
    }

    // Keys/values of the first batch slots and span positions, per layer; kept while a chunk reuses them.
    (Tensor[] Keys, Tensor[] Values) SpanViews(int batch, int span)
    {
        if (_spanViews is { } v && v.Batch == batch && v.Span == span) return (v.Keys, v.Values);
        DropSpanViews();
        Tensor View(Tensor cache, int half) => cache[half].narrow(0, 0, batch).narrow(2, 0, span).DetachFromDisposeScope();
        var keys = _cache!.Select(c => View(c, 0)).ToArray();
        var values = _cache!.Select(c => View(c, 1)).ToArray();
        _spanViews = (batch, span, keys, values);
        return (keys, values);
    }

    /// <summary>Rotary factors of <paramref name="positions"/> [n] (int64): complex64 [n, D/2].</summary>
    public Tensor RopeAt(Tensor positions) => _rope.index_select(0, positions);

    Tensor Norm(Tensor x, Tensor weight)
    {
        long n = x.shape[^1];
        return F.layer_norm(cat([x, x.neg()], -1), [2 * n], weight, null, _a.RmsNormEps).narrow(-1, 0, n);
    }

    // x: [..., heads, D] rows of the fused projection, rotated in place. freqs broadcasts to [..., heads, D/2] (complex64).
    void Rope(Tensor x, Tensor freqs)
    {
        var pairs = x.view([.. x.shape[..^1], x.shape[^1] / 2, 2]);
        if (DType == ScalarType.Float32) view_as_complex(pairs).mul_(freqs);
        else pairs.copy_(view_as_real(view_as_complex(pairs.to(ScalarType.Float32)).mul_(freqs)));
    }

    // x·Wᵀ (+ bias) in one kernel.
    static Tensor Linear(Tensor x, Tensor weightT, Tensor? bias) => bias is null ? x.matmul(weightT) : addmm(bias, x, weightT, 1, 1);

    // residual + x·Wᵀ (+ bias): the residual add rides in the matmul.
    static Tensor AddLinear(Tensor residual, Tensor x, Tensor weightT, Tensor? bias)
    {
        var sum = addmm(residual, x, weightT, 1, 1);
        return bias is null ? sum : sum.add_(bias);
    }

    Tensor Mlp(Tensor x, Layer l)
    {
        int f = _a.IntermediateSize;
        var gateUp = Linear(Norm(x, l.PostNorm), l.GateUpT, l.GateUpBias);
        return F.silu(gateUp.narrow(-1, 0, f)).mul_(gateUp.narrow(-1, f, f));
    }

    /// <summary>
    /// One decode step of the first <paramref name="batch"/> slots: <paramref name="tokens"/> [batch] are fed at
    /// positions whose rotary factors are <paramref name="freqs"/> [batch, 1, D/2], their keys/values written at the
    /// flat cache rows <paramref name="kvRows"/> [batch, 2, KV], attention over the first <paramref name="span"/>
    /// positions with the additive <paramref name="mask"/> [batch, 1, 1, span]. Returns float32 logits [batch, vocab].
    /// </summary>
    public Tensor Decode(Tensor tokens, Tensor freqs, Tensor kvRows, Tensor mask, int batch, int span)
    {
        var a = _a;
        int d = a.HeadDim;
        var x = _embed.index_select(0, tokens);
        var (keys, values) = SpanViews(batch, span);
        for (int i = 0; i < _layers.Length; i++)
        {
            var l = _layers[i];
            var qkv = Linear(Norm(x, l.InputNorm), l.QkvT, l.QkvBias);                  // [B, (H + 2KV)·D]
            Rope(qkv.narrow(1, 0, _qDim + _kvDim).view(batch, a.HeadCount + a.KvHeadCount, d), freqs);
            _cacheRows![i].index_put_(qkv.narrow(1, _qDim, 2 * _kvDim).view(batch, 2, a.KvHeadCount, d), kvRows);
            // Grouped-query attention without repeating K/V: the G query heads of a KV head are its G "query rows".
            var q = qkv.narrow(1, 0, _qDim).view(batch, a.KvHeadCount, _groups, d);
            var attn = F.scaled_dot_product_attention(q, keys[i], values[i], mask);
            x = AddLinear(x, attn.reshape(batch, _qDim), l.OT, l.OBias);
            x = AddLinear(x, Mlp(x, l), l.DownT, l.DownBias);
        }
        return Norm(x, _finalNorm).matmul(_headT).to(ScalarType.Float32);
    }

    /// <summary>
    /// Batched prefill of <paramref name="ids"/> [n, T] (right-padded) at positions 0..T-1. With <paramref name="slots"/>
    /// [n] the keys/values go to those cache slots; <paramref name="last"/> [n] (the index of each prompt's last token)
    /// selects one row of logits per prompt, otherwise logits of every position [n, T, vocab] are returned (float32).
    /// </summary>
    public Tensor Prefill(Tensor ids, Tensor? slots, Tensor? last)
    {
        var a = _a;
        long n = ids.shape[0], t = ids.shape[1];
        int d = a.HeadDim;
        var x = _embed.index_select(0, ids.flatten());                               // [n·T, hidden]
        var freqs = _rope.narrow(0, 0, t).view(1, t, 1, d / 2);
        for (int i = 0; i < _layers.Length; i++)
        {
            var l = _layers[i];
            var qkv = Linear(Norm(x, l.InputNorm), l.QkvT, l.QkvBias).view(n, t, -1);
            Rope(qkv.narrow(2, 0, _qDim + _kvDim).view(n, t, a.HeadCount + a.KvHeadCount, d), freqs);
            var kv = qkv.narrow(2, _qDim, 2 * _kvDim).view(n, t, 2, a.KvHeadCount, d).permute(2, 0, 3, 1, 4);   // [2, n, KV, T, D]
            if (slots is not null) _cache![i].narrow(3, 0, t).index_copy_(1, slots, kv);
            var q = qkv.narrow(2, 0, _qDim).view(n, t, a.HeadCount, d).transpose(1, 2);
            var k = kv[0].repeat_interleave(_groups, dim: 1);
            var v = kv[1].repeat_interleave(_groups, dim: 1);
            var attn = F.scaled_dot_product_attention(q, k, v, is_casual: true);      // [n, H, T, D]
            x = AddLinear(x, attn.transpose(1, 2).reshape(n * t, _qDim), l.OT, l.OBias);
            x = AddLinear(x, Mlp(x, l), l.DownT, l.DownBias);
        }
        if (last is not null) x = x.index_select(0, last + arange(n, device: Device) * t);
        var logits = Norm(x, _finalNorm).matmul(_headT).to(ScalarType.Float32);
        return last is null ? logits.view(n, t, -1) : logits;
    }

    public void Dispose()
    {
        ReleaseCache();
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}
