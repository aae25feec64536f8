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
        public required Tensor InputNorm, PostNorm;
        public required Tensor QkvT, OT, GateUpT, DownT;   // transposed views for matmul
        public Tensor? QkvBias, OBias, GateUpBias, DownBias;
    }

    readonly LlamaArchitecture _a;
    readonly int _qDim, _kvDim, _groups;
    readonly Layer[] _layers;
    readonly Tensor _embed, _head, _headT, _finalNorm, _rope;
    readonly TorchWeightBlock[] _blocks;
    readonly Dictionary<LoraGroup, Tensor> _adaptable;   // the stacked matrices an adapter group adds to
    bool _adapterMerged;
    readonly List<Tensor> _owned = new();
    TorchLoraAdapter? _adapter;
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
        int layers = arch.LayerCount, hidden = arch.HiddenSize, ffn = arch.IntermediateSize, qkvRows = _qDim + 2 * _kvDim;
        using var scope = NewDisposeScope();
        // Each kind of weight is one allocation stacked over layers ([L, ...]), so a swap can fill it with one copy.
        Tensor New(params long[] shape)
        {
            var t = Keep(empty(shape, dtype, device));
            WeightBytes += t.NumberOfElements * t.ElementSize;
            return t;
        }
        _embed = New(arch.VocabSize, hidden);
        _head = arch.TieWordEmbeddings ? _embed : New(arch.VocabSize, hidden);
        _headT = Keep(_head.t());
        _finalNorm = New(2 * hidden);
        var qkv = New(layers, qkvRows, hidden);
        var o = New(layers, hidden, _qDim);
        var gateUp = New(layers, 2 * ffn, hidden);
        var down = New(layers, hidden, ffn);
        _adaptable = new() { [LoraGroup.Qkv] = qkv, [LoraGroup.O] = o, [LoraGroup.GateUp] = gateUp, [LoraGroup.Down] = down };
        var inputNorm = New(layers, 2 * hidden);
        var postNorm = New(layers, 2 * hidden);
        bool Has(string name) => parameters.ContainsKey($"model.layers.0.{name}.bias");
        var qkvBias = Has("self_attn.q_proj") ? New(layers, qkvRows) : null;
        var oBias = Has("self_attn.o_proj") ? New(layers, hidden) : null;
        var gateUpBias = Has("mlp.gate_proj") ? New(layers, 2 * ffn) : null;
        var downBias = Has("mlp.down_proj") ? New(layers, hidden) : null;
        _layers = new Layer[layers];
        for (int i = 0; i < layers; i++)
            _layers[i] = new Layer
            {
                InputNorm = Keep(inputNorm[i]), PostNorm = Keep(postNorm[i]),
                QkvT = Keep(qkv[i].t()), OT = Keep(o[i].t()), GateUpT = Keep(gateUp[i].t()), DownT = Keep(down[i].t()),
                QkvBias = qkvBias is null ? null : Keep(qkvBias[i]), OBias = oBias is null ? null : Keep(oBias[i]),
                GateUpBias = gateUpBias is null ? null : Keep(gateUpBias[i]), DownBias = downBias is null ? null : Keep(downBias[i]),
            };
        _rope = Keep(BuildRope(arch, contextLength, device));

        // Where each block's rows come from (Hugging Face names), in the order they are stacked.
        var blocks = new List<TorchWeightBlock>();
        void Block(Tensor dst, BlockLayout layout, params (string Name, long[] Shape)[] parts) =>
            blocks.Add(new TorchWeightBlock(Keep(dst), Enumerable.Range(0, layers).Select(i => parts.Select(s => $"model.layers.{i}.{s.Name}").ToArray()).ToArray(),
                parts.Select(s => s.Shape).ToArray(), layout, arch.HeadDim));
        void Single(Tensor dst, string name, BlockLayout layout, params long[] shape) =>
            blocks.Add(new TorchWeightBlock(Keep(dst), [[name]], [shape], layout, arch.HeadDim));
        Single(_embed.unsqueeze(0), "model.embed_tokens.weight", BlockLayout.Plain, arch.VocabSize, hidden);
        if (!arch.TieWordEmbeddings) Single(_head.unsqueeze(0), "lm_head.weight", BlockLayout.Plain, arch.VocabSize, hidden);
        Single(_finalNorm.view(1, 2, hidden), "model.norm.weight", BlockLayout.Twice, hidden);
        Block(qkv.narrow(1, 0, _qDim + _kvDim), BlockLayout.Rotary, ("self_attn.q_proj.weight", [_qDim, hidden]), ("self_attn.k_proj.weight", [_kvDim, hidden]));
        Block(qkv.narrow(1, _qDim + _kvDim, _kvDim), BlockLayout.Plain, ("self_attn.v_proj.weight", [_kvDim, hidden]));
        Block(o, BlockLayout.Plain, ("self_attn.o_proj.weight", [hidden, _qDim]));
        Block(gateUp, BlockLayout.Plain, ("mlp.gate_proj.weight", [ffn, hidden]), ("mlp.up_proj.weight", [ffn, hidden]));
        Block(down, BlockLayout.Plain, ("mlp.down_proj.weight", [hidden, ffn]));
        Block(inputNorm.view(layers, 2, hidden), BlockLayout.Twice, ("input_layernorm.weight", [hidden]));
        Block(postNorm.view(layers, 2, hidden), BlockLayout.Twice, ("post_attention_layernorm.weight", [hidden]));
        if (qkvBias is not null)
        {
            Block(qkvBias.narrow(1, 0, _qDim + _kvDim).unsqueeze(2), BlockLayout.Rotary, ("self_attn.q_proj.bias", [_qDim]), ("self_attn.k_proj.bias", [_kvDim]));
            Block(qkvBias.narrow(1, _qDim + _kvDim, _kvDim).unsqueeze(2), BlockLayout.Plain, ("self_attn.v_proj.bias", [_kvDim]));
        }
        if (oBias is not null) Block(oBias.unsqueeze(2), BlockLayout.Plain, ("self_attn.o_proj.bias", [hidden]));
        if (gateUpBias is not null) Block(gateUpBias.unsqueeze(2), BlockLayout.Plain, ("mlp.gate_proj.bias", [ffn]), ("mlp.up_proj.bias", [ffn]));
        if (downBias is not null) Block(downBias.unsqueeze(2), BlockLayout.Plain, ("mlp.down_proj.bias", [hidden]));
        _blocks = blocks.ToArray();
    }

    Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        _owned.Add(t);
        return t;
    }

    public LlamaArchitecture Architecture => _a;
    public Device Device { get; }
    public ScalarType DType { get; }
    public int ContextLength { get; }
    public int Slots { get; }
    public long WeightBytes { get; private set; }
    public bool HoldsCache => _cache is not null;

    /// <summary>Copy kernels the last <see cref="CopyWeights"/> issued (one per block when the trainer's tensors are stacked).</summary>
    public int LastCopyKernels { get; private set; }

    /// <summary>The LoRA adapter applied on top of the base weights, if any (see <see cref="SetAdapter"/>).</summary>
    public TorchLoraAdapter? Adapter => _adapter;

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
    /// Copies the trainer's parameters (Hugging Face names) into the decoding layout, with the dtype conversion and the
    /// rotary permutation in the copy: one kernel per block when the parameters live in one flat buffer (FlatAdamW on
    /// CUDA), one per tensor otherwise. With <paramref name="onlyTrainable"/> only blocks with a source that requires
    /// gradients are copied (a frozen base under an adapter). Shapes are checked first, so a bad dictionary changes
    /// nothing. Returns the bytes written.
    /// </summary>
    public long CopyWeights(IReadOnlyDictionary<string, Tensor> p, bool onlyTrainable = false)
    {
        Prepare(p);   // everything resolved before the first write
        using var _ = no_grad();
        if (!onlyTrainable) _adapterMerged = false;   // the adapted matrices are the base's again
        long bytes = 0;
        int kernels = 0;
        foreach (var block in _blocks)
        {
            if (onlyTrainable && !block.Trainable) continue;
            kernels += block.Copy();
            bytes += block.Bytes;
        }
        LastCopyKernels = kernels;
        return bytes;
    }

    /// <summary>Checks (or works out again) every block's copy plan for <paramref name="p"/>: the host side of a swap.</summary>
    public void Prepare(IReadOnlyDictionary<string, Tensor> p)
    {
        foreach (var block in _blocks) block.Prepare(p);
    }

    /// <summary>Takes <paramref name="adapter"/> (or none) as the adapter applied in decoding; the previous one is disposed.</summary>
    public void SetAdapter(TorchLoraAdapter? adapter)
    {
        if (ReferenceEquals(adapter, _adapter)) return;
        _adapter?.Dispose();
        _adapter = adapter;
        _adapterMerged = false;
    }

    /// <summary>
    /// Folds the adapter into the base weights (freshly copied: call right after <see cref="CopyWeights"/>), so decoding
    /// runs at the base model's speed; until the next base copy, decoding no longer applies it separately.
    /// </summary>
    public void MergeAdapter()
    {
        _adapter!.MergeInto(_adaptable);
        _adapterMerged = true;
    }

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

    // Adds the adapter's scale·B(A x) of one group of projections to y = W x, when the engine applies an adapter there.
    Tensor Lora(Tensor y, Tensor x, int layer, LoraGroup group) => _adapter is { } adapter && !_adapterMerged ? adapter.Apply(y, x, layer, group) : y;

    // Fused q/k/v rows [n, (H + 2KV)·D] of layer i, before rotary embedding.
    Tensor Qkv(Tensor x, int i)
    {
        var l = _layers[i];
        var h = Norm(x, l.InputNorm);
        return Lora(Linear(h, l.QkvT, l.QkvBias), h, i, LoraGroup.Qkv);
    }

    // x + o_proj(attention output) of layer i.
    Tensor Output(Tensor x, Tensor attn, int i) => Lora(AddLinear(x, attn, _layers[i].OT, _layers[i].OBias), attn, i, LoraGroup.O);

    // x + the SwiGLU MLP of layer i.
    Tensor Mlp(Tensor x, int i)
    {
        var l = _layers[i];
        int f = _a.IntermediateSize;
        var h = Norm(x, l.PostNorm);
        var gateUp = Lora(Linear(h, l.GateUpT, l.GateUpBias), h, i, LoraGroup.GateUp);
        var act = F.silu(gateUp.narrow(-1, 0, f)).mul_(gateUp.narrow(-1, f, f));
        return Lora(AddLinear(x, act, l.DownT, l.DownBias), act, i, LoraGroup.Down);
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
            var qkv = Qkv(x, i);                                                         // [B, (H + 2KV)·D]
            Rope(qkv.narrow(1, 0, _qDim + _kvDim).view(batch, a.HeadCount + a.KvHeadCount, d), freqs);
            _cacheRows![i].index_put_(qkv.narrow(1, _qDim, 2 * _kvDim).view(batch, 2, a.KvHeadCount, d), kvRows);
            // Grouped-query attention without repeating K/V: the G query heads of a KV head are its G "query rows".
            var q = qkv.narrow(1, 0, _qDim).view(batch, a.KvHeadCount, _groups, d);
            var attn = F.scaled_dot_product_attention(q, keys[i], values[i], mask);
            x = Mlp(Output(x, attn.reshape(batch, _qDim), i), i);
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
            var qkv = Qkv(x, i).view(n, t, -1);
            Rope(qkv.narrow(2, 0, _qDim + _kvDim).view(n, t, a.HeadCount + a.KvHeadCount, d), freqs);
            var kv = qkv.narrow(2, _qDim, 2 * _kvDim).view(n, t, 2, a.KvHeadCount, d).permute(2, 0, 3, 1, 4);   // [2, n, KV, T, D]
            if (slots is not null) _cache![i].narrow(3, 0, t).index_copy_(1, slots, kv);
            var q = qkv.narrow(2, 0, _qDim).view(n, t, a.HeadCount, d).transpose(1, 2);
            var k = kv[0].repeat_interleave(_groups, dim: 1);
            var v = kv[1].repeat_interleave(_groups, dim: 1);
            var attn = F.scaled_dot_product_attention(q, k, v, is_casual: true);      // [n, H, T, D]
            x = Mlp(Output(x, attn.transpose(1, 2).reshape(n * t, _qDim), i), i);
        }
        if (last is not null) x = x.index_select(0, last + arange(n, device: Device) * t);
        var logits = Norm(x, _finalNorm).matmul(_headT).to(ScalarType.Float32);
        return last is null ? logits.view(n, t, -1) : logits;
    }

    public void Dispose()
    {
        ReleaseCache();
        SetAdapter(null);
        foreach (var block in _blocks) block.Dispose();
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}
