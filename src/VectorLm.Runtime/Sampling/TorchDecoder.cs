using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VectorLm.Sampling;

/// <summary>
/// The torch engine's copy of a Llama model, laid out for decoding, and its KV cache. Every tensor here is created
/// once (detached from any caller's DisposeScope) and then only written in place: a weight swap is one pass of
/// device-to-device copies into the same buffers, or none for blocks that read the trainer's buffer directly
/// (see <see cref="TorchWeightBlock"/>), and a decode step writes keys/values at each sequence's position.
/// </summary>
/// <remarks>
/// <para>Layout per layer: fused <c>qkv</c> [(H + 2·KV)·D, hidden], <c>o</c>, fused <c>gate_up</c> [2·F, hidden],
/// <c>down</c>, in the trainer's (Hugging Face) row order, so a flat optimizer buffer holding q, k, v of every layer is
/// the <c>qkv</c> block as it is. Rotary embedding is rotate-half on q and k together: x·cos + swap_halves(x)·sin, with
/// the sign of rotate_half folded into the sin table. Biases, where the checkpoint has them (Qwen2's q/k/v, Llama's
/// attention_bias and mlp_bias), are fused the same way and enter the matmuls as <c>addmm</c> inputs; RoPE scaling
/// lives in the rotary tables (<see cref="BuildRope"/>).</para>
/// <para>RMSNorm is a layer norm over <c>[x, -x]</c>: its mean is 0 and its variance mean(x²), so the first half is
/// exactly x / sqrt(mean(x²) + eps) · w, in one fused kernel (TorchSharp has no rms_norm); the norm weight is kept
/// duplicated ([w, w]) for it.</para>
/// <para>Zero copy: when the engine's dtype is the trainer's and the trainer's matrices of a kind lie in one buffer
/// (FlatAdamW), the engine's embedding, head and per-layer matrices are views of the trainer's live weights. That is
/// safe because the engine only reads them under its lock in Generate, which syncs first, and an optimizer step marks
/// it stale; it is never done while an adapter is present (a merged adapter writes into the engine's matrices).</para>
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
    readonly Tensor _rope;   // [context, 2, 1, 2, D/2]: cos, then sin with rotate_half's sign folded in (see BuildRope)
    readonly TorchWeightBlock _embed, _finalNorm, _qkv, _o, _gateUp, _down, _inputNorm, _postNorm;
    readonly TorchWeightBlock? _head, _qkvBias, _oBias, _gateUpBias, _downBias;
    readonly TorchWeightBlock[] _blocks;
    bool _adapterMerged;
    TorchLoraAdapter? _adapter;
    // Views of the blocks' current tensors, made again when a block's Generation changes (see RefreshViews).
    Layer[] _layers = [];
    Tensor? _embedView, _headT, _finalNormView;
    readonly List<Tensor> _views = new();
    int[] _viewGenerations = [];
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
        int layers = arch.LayerCount, hidden = arch.HiddenSize, ffn = arch.IntermediateSize;
        // Each kind of weight is one block stacked over layers ([L, ...]), so a swap fills it with one copy, or none.
        TorchWeightBlock Block(BlockLayout layout, bool matrix, params (string Name, long[] Shape)[] parts)
        {
            var names = Enumerable.Range(0, layers).Select(i => parts.Select(s => $"model.layers.{i}.{s.Name}").ToArray()).ToArray();
            return New(names, parts.Select(s => s.Shape).ToArray(), layout, matrix);
        }
        TorchWeightBlock Single(string name, BlockLayout layout, bool matrix, params long[] shape) => New([[name]], [shape], layout, matrix);
        TorchWeightBlock New(string[][] names, long[][] shapes, BlockLayout layout, bool matrix) =>
            new(names, shapes, layout, dtype, shape => empty(shape, dtype, device), mayAlias: matrix);
        bool Has(string name) => parameters.ContainsKey($"model.layers.0.{name}.bias");
        _embed = Single("model.embed_tokens.weight", BlockLayout.Plain, true, arch.VocabSize, hidden);
        _head = arch.TieWordEmbeddings ? null : Single("lm_head.weight", BlockLayout.Plain, true, arch.VocabSize, hidden);
        _finalNorm = Single("model.norm.weight", BlockLayout.Twice, false, hidden);
        _qkv = Block(BlockLayout.Plain, true, ("self_attn.q_proj.weight", [_qDim, hidden]), ("self_attn.k_proj.weight", [_kvDim, hidden]),
            ("self_attn.v_proj.weight", [_kvDim, hidden]));
        _o = Block(BlockLayout.Plain, true, ("self_attn.o_proj.weight", [hidden, _qDim]));
        _gateUp = Block(BlockLayout.Plain, true, ("mlp.gate_proj.weight", [ffn, hidden]), ("mlp.up_proj.weight", [ffn, hidden]));
        _down = Block(BlockLayout.Plain, true, ("mlp.down_proj.weight", [hidden, ffn]));
        _inputNorm = Block(BlockLayout.Twice, false, ("input_layernorm.weight", [hidden]));
        _postNorm = Block(BlockLayout.Twice, false, ("post_attention_layernorm.weight", [hidden]));
        // Biases are small: always copied.
        if (Has("self_attn.q_proj"))
            _qkvBias = Block(BlockLayout.Plain, false, ("self_attn.q_proj.bias", [_qDim]), ("self_attn.k_proj.bias", [_kvDim]), ("self_attn.v_proj.bias", [_kvDim]));
        if (Has("self_attn.o_proj")) _oBias = Block(BlockLayout.Plain, false, ("self_attn.o_proj.bias", [hidden]));
        if (Has("mlp.gate_proj")) _gateUpBias = Block(BlockLayout.Plain, false, ("mlp.gate_proj.bias", [ffn]), ("mlp.up_proj.bias", [ffn]));
        if (Has("mlp.down_proj")) _downBias = Block(BlockLayout.Plain, false, ("mlp.down_proj.bias", [hidden]));
        _blocks = new[] { _embed, _head, _finalNorm, _qkv, _o, _gateUp, _down, _inputNorm, _postNorm, _qkvBias, _oBias, _gateUpBias, _downBias }
            .OfType<TorchWeightBlock>().ToArray();
        WeightBytes = _blocks.Sum(b => b.Bytes);
        _rope = BuildRope(arch, contextLength, device, dtype);
    }

    public LlamaArchitecture Architecture => _a;
    public Device Device { get; }
    public ScalarType DType { get; }
    public int ContextLength { get; }
    public int Slots { get; }

    /// <summary>Bytes of the weights the engine decodes with, its own or (aliased) the trainer's.</summary>
    public long WeightBytes { get; }

    /// <summary>Bytes of those weights read from the trainer's buffers instead of a copy (see <see cref="TorchWeightBlock.Aliased"/>).</summary>
    public long AliasedBytes => _blocks.Where(b => b.Aliased).Sum(b => b.Bytes);

    /// <summary>Bytes of weight storage the engine holds itself (the rest is aliased).</summary>
    public long StoredBytes => _blocks.Where(b => b.HoldsStorage).Sum(b => b.Bytes);

    /// <summary>
    /// Whether blocks that can may read the trainer's buffers instead of copying them (true by default; never while an
    /// adapter is present). Takes effect at the next <see cref="CopyWeights"/>.
    /// </summary>
    public bool AliasTrainerWeights { get; set; } = true;

    public bool HoldsCache => _cache is not null;

    /// <summary>Copy kernels the last <see cref="CopyWeights"/> or <see cref="SetAdapter"/> issued (one per copied block when the trainer's tensors are stacked).</summary>
    public int LastCopyKernels { get; private set; }

    /// <summary>The LoRA adapter applied on top of the base weights, if any (see <see cref="SetAdapter"/>).</summary>
    public TorchLoraAdapter? Adapter => _adapter;

    /// <summary>
    /// [context, 2, 1, 2, D/2] in the engine's dtype: cos, then sin with rotate_half's sign folded in (−sin on the
    /// first half, +sin on the second), of position × frequency × the attention factor: the frequencies and factor of
    /// the model's RoPE scaling, angles in float64, as the trainer model computes its tables. Shaped so that a
    /// position's cos or sin broadcasts over the heads of q/k rows viewed as halves [heads, 2, D/2].
    /// </summary>
    static Tensor BuildRope(LlamaArchitecture a, int context, Device device, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var scaling = a.RopeScaling ?? Models.RopeScaling.None;
        var invFreq = tensor(scaling.InverseFrequencies(a.HeadDim, a.RopeTheta, a.MaxPositions)).to(ScalarType.Float64);
        var angles = outer(arange(0, context, dtype: ScalarType.Float64), invFreq);   // [context, D/2]
        double factor = scaling.AttentionFactor(a.MaxPositions);
        var cos = angles.cos().mul_(factor);
        var sin = angles.sin().mul_(factor);
        var table = stack([stack([cos, cos], 1), stack([sin.neg(), sin], 1)], 1).unsqueeze(2);   // [context, 2, 1, 2, D/2]
        return table.to(dtype).to(device).DetachFromDisposeScope();
    }

    /// <summary>
    /// Brings the engine's weights up to the trainer's parameters (Hugging Face names): blocks that can read the
    /// trainer's buffer in place do (<see cref="AliasTrainerWeights"/>, no adapter), the others are copied with the
    /// dtype conversion in the copy: one kernel per block when the parameters live in one flat buffer (FlatAdamW on
    /// CUDA), one per tensor otherwise. With <paramref name="onlyTrainable"/> only blocks with a source that requires
    /// gradients are synced (a frozen base under an adapter). Shapes are checked first, so a bad dictionary changes
    /// nothing. Returns the bytes written.
    /// </summary>
    public long CopyWeights(IReadOnlyDictionary<string, Tensor> p, bool onlyTrainable = false)
    {
        Prepare(p);   // everything resolved before the first write
        if (!onlyTrainable) _adapterMerged = false;   // the adapted matrices are the base's again
        bool alias = AliasTrainerWeights && _adapter is null;
        long bytes = 0;
        int kernels = 0;
        foreach (var block in _blocks)
        {
            if (onlyTrainable && !block.Trainable) continue;
            int copies = block.Sync(alias);
            kernels += copies;
            if (copies > 0) bytes += block.Bytes;
        }
        LastCopyKernels = kernels;
        RefreshViews();
        return bytes;
    }

    /// <summary>Checks (or works out again) every block's copy plan for <paramref name="p"/>: the host side of a swap.</summary>
    public void Prepare(IReadOnlyDictionary<string, Tensor> p)
    {
        foreach (var block in _blocks) block.Prepare(p);
    }

    /// <summary>
    /// Takes <paramref name="adapter"/> (or none) as the adapter applied in decoding; the previous one is disposed. With
    /// an adapter, blocks that read the trainer's buffers get their own copy first (returns its bytes; kernels in
    /// <see cref="LastCopyKernels"/>): the engine must never write into the trainer's weights, as merging would.
    /// </summary>
    public long SetAdapter(TorchLoraAdapter? adapter)
    {
        LastCopyKernels = 0;
        if (ReferenceEquals(adapter, _adapter)) return 0;
        _adapter?.Dispose();
        _adapter = adapter;
        _adapterMerged = false;
        if (adapter is null) return 0;
        long bytes = 0;
        foreach (var block in _blocks)
        {
            long copied = block.TakeOwnCopy();
            if (copied > 0) LastCopyKernels++;
            bytes += copied;
        }
        RefreshViews();
        return bytes;
    }

    /// <summary>
    /// Folds the adapter into the base weights (freshly copied: call right after <see cref="CopyWeights"/>), so decoding
    /// runs at the base model's speed; until the next base copy, decoding no longer applies it separately.
    /// </summary>
    public void MergeAdapter()
    {
        var adaptable = new Dictionary<LoraGroup, TorchWeightBlock> { [LoraGroup.Qkv] = _qkv, [LoraGroup.O] = _o, [LoraGroup.GateUp] = _gateUp, [LoraGroup.Down] = _down };
        if (adaptable.Values.Any(b => b.Aliased))
            throw new InvalidOperationException("The engine reads the trainer's weights in place; an adapter cannot be merged into them.");
        _adapter!.MergeInto(adaptable.ToDictionary(g => g.Key, g => g.Value.Current));
        _adapterMerged = true;
    }

    // The decoder's views of the blocks (per-layer matrices transposed for matmul, norms, biases), made again when a
    // block reads another tensor (aliased, re-pointed, or back to its own copy), so no view reads stale memory. Made
    // without autograd: views of a trainer's parameter made with it would fail once the optimizer wrote the parameter.
    void RefreshViews()
    {
        var generations = _blocks.Select(b => b.Generation).ToArray();
        if (generations.SequenceEqual(_viewGenerations)) return;
        foreach (var t in _views) t.Dispose();
        _views.Clear();
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Tensor Keep(Tensor t)
        {
            _views.Add(t.DetachFromDisposeScope());
            return t;
        }
        int layers = _a.LayerCount, hidden = _a.HiddenSize;
        _embedView = Keep(_embed.Current[0]);
        _headT = Keep((_head ?? _embed).Current[0].t());
        _finalNormView = Keep(_finalNorm.Current.view(2 * hidden));
        Tensor Norms(TorchWeightBlock b) => b.Current.view(layers, 2 * hidden);
        Tensor? Bias(TorchWeightBlock? b) => b?.Current.view(layers, -1);
        var (qkv, o, gateUp, down) = (_qkv.Current, _o.Current, _gateUp.Current, _down.Current);
        var (inputNorm, postNorm) = (Norms(_inputNorm), Norms(_postNorm));
        var (qkvBias, oBias, gateUpBias, downBias) = (Bias(_qkvBias), Bias(_oBias), Bias(_gateUpBias), Bias(_downBias));
        _layers = Enumerable.Range(0, layers).Select(i => new Layer
        {
            InputNorm = Keep(inputNorm[i]), PostNorm = Keep(postNorm[i]),
            QkvT = Keep(qkv[i].t()), OT = Keep(o[i].t()), GateUpT = Keep(gateUp[i].t()), DownT = Keep(down[i].t()),
            QkvBias = qkvBias is null ? null : Keep(qkvBias[i]), OBias = oBias is null ? null : Keep(oBias[i]),
            GateUpBias = gateUpBias is null ? null : Keep(gateUpBias[i]), DownBias = downBias is null ? null : Keep(downBias[i]),
        }).ToArray();
        _viewGenerations = generations;
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

    /// <summary>Rotary tables of <paramref name="positions"/> [n] (int64): [n, 2, 1, 2, D/2] (cos, signed sin), in the engine's dtype.</summary>
    public Tensor RopeAt(Tensor positions) => _rope.index_select(0, positions);

    Tensor Norm(Tensor x, Tensor weight)
    {
        long n = x.shape[^1];
        return F.layer_norm(cat([x, x.neg()], -1), [2 * n], weight, null, _a.RmsNormEps).narrow(-1, 0, n);
    }

    // halves: [..., heads, 2, D/2], the q and k rows of the fused projection, rotated in place as Hugging Face's
    // rotate-half RoPE: x·cos + rotate_half(x)·sin = x·cos + (x with its halves swapped)·(sin with rotate_half's sign).
    // cos, sin: [..., 1, 2, D/2], broadcasting over the heads. Three kernels (the swap, the multiply, the fused add) and
    // few host calls: the engine is bound by issuing them.
    static void Rope(Tensor halves, Tensor cos, Tensor sin)
    {
        var swapped = halves.flip(-2);   // before the multiply overwrites them
        halves.mul_(cos).addcmul_(swapped, sin, One);
    }

    static readonly Scalar One = 1;   // one native scalar for every call

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
    /// positions whose rotary tables are <paramref name="rope"/> [batch, 2, 1, 2, D/2] (<see cref="RopeAt"/>), their keys/values written at the
    /// flat cache rows <paramref name="kvRows"/> [batch, 2, KV], attention over the first <paramref name="span"/>
    /// positions with the additive <paramref name="mask"/> [batch, 1, 1, span]. Returns float32 logits [batch, vocab].
    /// </summary>
    public Tensor Decode(Tensor tokens, Tensor rope, Tensor kvRows, Tensor mask, int batch, int span)
    {
        var a = _a;
        int d = a.HeadDim;
        var x = _embedView!.index_select(0, tokens);
        var (keys, values) = SpanViews(batch, span);
        var (cos, sin) = (rope.select(1, 0), rope.select(1, 1));                         // [B, 1, 2, D/2]
        for (int i = 0; i < _layers.Length; i++)
        {
            var qkv = Qkv(x, i);                                                         // [B, (H + 2KV)·D]
            Rope(qkv.narrow(1, 0, _qDim + _kvDim).view(batch, a.HeadCount + a.KvHeadCount, 2, d / 2), cos, sin);
            _cacheRows![i].index_put_(qkv.narrow(1, _qDim, 2 * _kvDim).view(batch, 2, a.KvHeadCount, d), kvRows);
            // Grouped-query attention without repeating K/V: the G query heads of a KV head are its G "query rows".
            var q = qkv.narrow(1, 0, _qDim).view(batch, a.KvHeadCount, _groups, d);
            var attn = F.scaled_dot_product_attention(q, keys[i], values[i], mask);
            x = Mlp(Output(x, attn.reshape(batch, _qDim), i), i);
        }
        return Norm(x, _finalNormView!).matmul(_headT!).to(ScalarType.Float32);
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
        var x = _embedView!.index_select(0, ids.flatten());                           // [n·T, hidden]
        var rope = _rope.narrow(0, 0, t);
        var (cos, sin) = (rope.select(1, 0), rope.select(1, 1));                         // [T, 1, 2, D/2]
        for (int i = 0; i < _layers.Length; i++)
        {
            var qkv = Qkv(x, i).view(n, t, -1);
            Rope(qkv.narrow(2, 0, _qDim + _kvDim).view(n, t, a.HeadCount + a.KvHeadCount, 2, d / 2), cos, sin);
            var kv = qkv.narrow(2, _qDim, 2 * _kvDim).view(n, t, 2, a.KvHeadCount, d).permute(2, 0, 3, 1, 4);   // [2, n, KV, T, D]
            if (slots is not null) _cache![i].narrow(3, 0, t).index_copy_(1, slots, kv);
            var q = qkv.narrow(2, 0, _qDim).view(n, t, a.HeadCount, d).transpose(1, 2);
            var k = kv[0].repeat_interleave(_groups, dim: 1);
            var v = kv[1].repeat_interleave(_groups, dim: 1);
            var attn = F.scaled_dot_product_attention(q, k, v, is_casual: true);      // [n, H, T, D]
            x = Mlp(Output(x, attn.transpose(1, 2).reshape(n * t, _qDim), i), i);
        }
        if (last is not null) x = x.index_select(0, last + arange(n, device: Device) * t);
        var logits = Norm(x, _finalNormView!).matmul(_headT!).to(ScalarType.Float32);
        return last is null ? logits.view(n, t, -1) : logits;
    }

    public void Dispose()
    {
        ReleaseCache();
        SetAdapter(null);
        foreach (var t in _views) t.Dispose();
        _views.Clear();
        foreach (var block in _blocks) block.Dispose();
        _rope.Dispose();
    }
}
