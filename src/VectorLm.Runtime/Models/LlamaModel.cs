using TorchSharp;
using TorchSharp.Modules;
using VectorLm.Training;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VectorLm.Models;

/// <summary>
/// A Llama-architecture decoder (Hugging Face <c>LlamaForCausalLM</c>): token embedding, pre-norm decoder layers of
/// grouped-query self-attention with rotary embeddings and a SwiGLU MLP, a final RMSNorm and a tied or untied head.
/// </summary>
/// <remarks>
/// <para>Parameters carry the Hugging Face names (<c>model.embed_tokens.weight</c>,
/// <c>model.layers.N.self_attn.q_proj.weight</c>, ..., <c>model.norm.weight</c>, <c>lm_head.weight</c> when untied),
/// so transformers checkpoints load one to one.</para>
/// <para>Rotary embeddings use the Hugging Face convention: each head's vector is split into two halves and
/// <c>rotate_half(x) = cat(-x2, x1)</c>; frequency i pairs element i with element i + head_dim/2. llama.cpp (GGUF)
/// pairs adjacent elements instead; converting q_proj/k_proj weights for GGUF needs the usual row permutation.</para>
/// <para>RMSNorm is computed in float32 whatever the parameter dtype. Initialisation is normal(0, 0.02) for linear
/// and embedding weights and ones for norms, as Hugging Face does (unit variance produced denormals on CPU).</para>
/// </remarks>
public sealed partial class LlamaModel : nn.Module<Tensor, Tensor>
{
    readonly LlamaBackbone model;
    readonly Linear? lm_head;

    /// <summary>The configuration this model was built from.</summary>
    public LlamaConfig Config { get; }

    LlamaModel(LlamaConfig config) : base("LlamaForCausalLM")
    {
        config.Validate();
        Config = config;
        model = new LlamaBackbone(config);
        register_module("model", model);
        if (!config.TieWordEmbeddings)
        {
            lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
            register_module("lm_head", lm_head);
        }
    }

    /// <summary>
    /// A freshly initialised model: weights drawn from normal(0, 0.02) by a generator seeded with
    /// <paramref name="seed"/> (same weights on every device and run), norms set to one, on
    /// <paramref name="device"/> (CPU when null), in the parameter dtype of <see cref="Precision.Current"/> (float32
    /// unless the precision is bf16-true).
    /// </summary>
    public static LlamaModel Create(LlamaConfig config, Device? device = null, long seed = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        var m = new LlamaModel(config);
        var generator = new Generator((ulong)seed);
        using (no_grad())
        {
            foreach (var (name, p) in m.named_parameters())
            {
                if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(1.0);
                else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_(); // as transformers initialises biases
                else
                {
                    // Drawn explicitly: nn.init.normal_ does not honour the generator in TorchSharp 0.107.
                    using var draw = randn(p.shape, dtype: p.dtype, generator: generator);
                    p.copy_(draw.mul_(0.02));
                }
            }
        }
        if (device is not null && device.type != DeviceType.CPU) m.to(device);
        m.ToPrecisionDtype();
        return m;
    }

    // bf16-true stores the parameters in bfloat16; every other precision keeps float32 masters.
    void ToPrecisionDtype()
    {
        var dtype = Precision.Current.ParameterDtype;
        if (dtype != ScalarType.Float32) this.to(dtype);
    }

    /// <summary>
    /// Loads a Hugging Face folder: <c>config.json</c> and <c>model.safetensors</c> (or the sharded
    /// <c>model.safetensors.index.json</c>). Weights stored as F16/BF16 are converted to the model's float32 (bfloat16
    /// under bf16-true, see <see cref="Precision.Current"/>).
    /// </summary>
    /// <exception cref="InvalidDataException">Bad config, missing tensor or wrong shape; the message names the field or tensor (and both shapes).</exception>
    public static LlamaModel FromPretrained(string folder, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        string configPath = Path.Combine(folder, "config.json");
        if (!File.Exists(configPath)) throw new FileNotFoundException($"{folder}: no config.json", configPath);
        var config = LlamaConfig.Load(configPath);
        using var weights = SafetensorsFolder.Open(folder);
        var m = new LlamaModel(config);
        if (device is not null && device.type != DeviceType.CPU) m.to(device);
        m.ToPrecisionDtype();
        m.LoadWeights(weights);
        return m;
    }

    /// <summary>Copies every parameter from <paramref name="weights"/>, checking names and shapes first.</summary>
    public void LoadWeights(SafetensorsFolder weights)
    {
        var parameters = BaseParameters().ToList(); // an adapter's tensors live in adapter folders (LoadAdapter)
        // Check everything before touching any parameter, so a bad checkpoint leaves the model unchanged.
        foreach (var (name, p) in parameters)
        {
            var entry = weights.Find(name)
                ?? throw new InvalidDataException($"{weights.Folder}: tensor \"{name}\" (shape {SafetensorsFile.FormatShape(p.shape)}) is missing from the checkpoint");
            if (!entry.Shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"{weights.Folder}: tensor \"{name}\" has shape {SafetensorsFile.FormatShape(entry.Shape)} but the model expects {SafetensorsFile.FormatShape(p.shape)}");
        }
        var known = parameters.Select(p => p.name).ToHashSet(StringComparer.Ordinal);
        foreach (string name in weights.Names)
        {
            if (known.Contains(name) || name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal)) continue;
            if (name == "lm_head.weight" && Config.TieWordEmbeddings) continue; // some exporters write the tied head too
            throw new InvalidDataException($"{weights.Folder}: tensor \"{name}\" is not a parameter of this model (check the config)");
        }
        foreach (var (name, p) in parameters) weights.CopyInto(name, p);
        Interlocked.Increment(ref _baseRevision);
    }

    /// <summary>
    /// Writes <c>config.json</c> and <c>model.safetensors</c> (Hugging Face layout) to <paramref name="folder"/>.
    /// Each file is written to a temporary name and renamed, so an interrupted save never leaves a torn file.
    /// </summary>
    /// <param name="folder">Created if missing.</param>
    /// <param name="dtype">Store weights in this dtype (F32, F16, BF16); default: as they are.</param>
    /// <param name="maxShardBytes">Split into shards plus an index above this size.</param>
    public void SaveTo(string folder, ScalarType? dtype = null, long maxShardBytes = long.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(folder);
        Directory.CreateDirectory(folder);
        var tensors = BaseParameters().Select(p => (p.name, (Tensor)p.parameter)).ToList(); // adapters: SaveAdapter
        SafetensorsFolder.Save(folder, tensors, dtype, maxShardBytes);
        string dtypeName = (dtype ?? tensors[0].Item2.dtype) switch
        {
            ScalarType.Float16 => "float16",
            ScalarType.BFloat16 => "bfloat16",
            _ => "float32",
        };
        Config.Save(Path.Combine(folder, "config.json"), dtypeName);
    }

    /// <summary>Logits <c>[batch, sequence, vocab]</c> for token ids <c>[batch, sequence]</c>.</summary>
    /// <exception cref="ArgumentException">The sequence is longer than <c>max_position_embeddings</c>.</exception>
    public override Tensor forward(Tensor inputIds) => forward(inputIds, null);

    /// <summary>
    /// Logits for <paramref name="inputIds"/> continuing the sequences held in <paramref name="cache"/> (positions
    /// start at <see cref="KvCache.Length"/>); the new keys and values are appended to the cache. Use under
    /// <c>torch.no_grad()</c>.
    /// </summary>
    /// <remarks>Runs under autocast when <see cref="Precision.Current"/> is mixed (bf16-mixed): the logits are then bfloat16.</remarks>
    public Tensor forward(Tensor inputIds, KvCache? cache)
    {
        var device = model.embed_tokens.weight!.device;
        using var autocast = Precision.Current.Autocast(device);
        var h = model.forward(inputIds, cache);
        return lm_head is null ? F.linear(h, model.embed_tokens.weight!) : lm_head.forward(h);
    }

    /// <summary>
    /// Mean cross-entropy of next-token predictions, computed in float32 whatever the precision. <paramref name="labels"/> has the shape of
    /// <paramref name="inputIds"/> and is already shifted: <c>labels[b, t]</c> is the id that should follow
    /// <c>inputIds[b, ..t]</c>, or -100 where no loss is taken.
    /// </summary>
    /// <remarks>
    /// On the CPU the head and the cross-entropy run over blocks of rows whose logits stay under
    /// <see cref="CpuLossBlockBytes"/>: whole-batch logits (32 MiB at 1024 tokens x 8192 vocab) and the three
    /// tensors of that size the loss and its backward make are above glibc's mmap threshold, so each came from fresh
    /// pages the kernel had to map and zero: about 30,000 page faults and a tenth of a 10M step's CPU time spent in the
    /// kernel. Blocks come from the reused heap; the step took 2-4% less CPU time in most in-process comparisons
    /// (<c>training --profile</c>). Other devices take the whole batch at once.
    /// </remarks>
    public Tensor Loss(Tensor inputIds, Tensor labels)
    {
        var device = model.embed_tokens.weight!.device;
        long rows = inputIds.numel();
        long blockRows = device.type == DeviceType.CPU ? Math.Max(1, CpuLossBlockBytes / (sizeof(float) * (long)Config.VocabSize)) : rows;
        if (blockRows >= rows)
        {
            using var logits = forward(inputIds);
            using var flat = logits.view(-1, Config.VocabSize);
            using var flat32 = flat.dtype == ScalarType.Float32 ? flat.alias() : flat.to(ScalarType.Float32);
            using var targets = labels.view(-1);
            return F.cross_entropy(flat32, targets, ignore_index: -100);
        }
        using var autocast = Precision.Current.Autocast(device);
        using var hidden = model.forward(inputIds, null);
        using var hiddenRows = hidden.view(rows, -1);
        using var allTargets = labels.view(-1);
        // split, not narrow: its backward writes the blocks' gradients into one tensor, narrow's zero-fills one per block.
        var blocks = hiddenRows.split(blockRows);
        var targetBlocks = allTargets.split(blockRows);
        Tensor? sum = null;
        for (int i = 0; i < blocks.Length; i++)
        {
            using var block = blocks[i];
            using var targets = targetBlocks[i];
            using var logits = lm_head is null ? F.linear(block, model.embed_tokens.weight!) : lm_head.forward(block);
            using var logits32 = logits.dtype == ScalarType.Float32 ? logits.alias() : logits.to(ScalarType.Float32);
            var blockSum = F.cross_entropy(logits32, targets, ignore_index: -100, reduction: nn.Reduction.Sum);
            if (sum is null) sum = blockSum;
            else
            {
                var next = sum + blockSum;
                sum.Dispose();
                blockSum.Dispose();
                sum = next;
            }
        }
        // The mean over the labelled positions, as cross_entropy's default (NaN when none is labelled, as there).
        using var counted = allTargets.ne(-100);
        using var count = counted.sum();
        using var total = sum!;
        return total / count;
    }

    /// <summary>Largest logits block (bytes of float32) <see cref="Loss"/> computes at once on the CPU.</summary>
    internal const long CpuLossBlockBytes = 4L << 20;

    /// <summary>A key/value cache for this model: <paramref name="batchSize"/> sequences of up to <paramref name="capacity"/> tokens.</summary>
    public KvCache NewKvCache(int batchSize, int? capacity = null) => new(Config, batchSize, capacity ?? Config.MaxPositionEmbeddings);
}

/// <summary>Keys and values of earlier positions, per layer, for incremental decoding with <see cref="LlamaModel.forward(Tensor, KvCache)"/>.</summary>
public sealed class KvCache : IDisposable
{
    readonly LlamaConfig _config;
    internal Tensor?[] Keys { get; }
    internal Tensor?[] Values { get; }

    /// <summary>Number of sequences.</summary>
    public int BatchSize { get; }
    /// <summary>Most positions the cache holds.</summary>
    public int Capacity { get; }
    /// <summary>Positions filled so far.</summary>
    public int Length { get; internal set; }

    internal KvCache(LlamaConfig config, int batchSize, int capacity)
    {
        if (capacity > config.MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(capacity), capacity, $"exceeds max_position_embeddings {config.MaxPositionEmbeddings}");
        _config = config;
        BatchSize = batchSize;
        Capacity = capacity;
        Keys = new Tensor?[config.NumHiddenLayers];
        Values = new Tensor?[config.NumHiddenLayers];
    }

    // Writes this step's keys/values after the filled part and returns views of everything so far.
    internal (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        if (k.shape[0] != BatchSize) throw new ArgumentException($"batch of {k.shape[0]} does not match the cache's {BatchSize}");
        // Made on first use, often inside a caller's per-token DisposeScope: detached, they live as long as the cache.
        Keys[layer] ??= zeros([BatchSize, _config.NumKeyValueHeads, Capacity, _config.HeadDim], k.dtype, k.device).DetachFromDisposeScope();
        Values[layer] ??= zeros([BatchSize, _config.NumKeyValueHeads, Capacity, _config.HeadDim], v.dtype, v.device).DetachFromDisposeScope();
        using (no_grad())
        {
            Keys[layer]!.narrow(2, Length, t).copy_(k);
            Values[layer]!.narrow(2, Length, t).copy_(v);
        }
        return (Keys[layer]!.narrow(2, 0, Length + t), Values[layer]!.narrow(2, 0, Length + t));
    }

    /// <summary>Forgets all positions (keeps the memory).</summary>
    public void Clear() => Length = 0;

    /// <summary>Frees the cache tensors.</summary>
    public void Dispose()
    {
        for (int i = 0; i < Keys.Length; i++)
        {
            Keys[i]?.Dispose();
            Values[i]?.Dispose();
            Keys[i] = Values[i] = null;
        }
    }
}

/// <summary>Hugging Face <c>LlamaModel</c>: embeddings, layers, final norm (parameter prefix <c>model.</c>).</summary>
sealed class LlamaBackbone : nn.Module<Tensor, Tensor>
{
    internal readonly Embedding embed_tokens;
    readonly ModuleList<LlamaDecoderLayer> layers;
    readonly RmsNorm norm;
    readonly LlamaConfig _config;
    // cos/sin tables, float32 [max_positions, head_dim]. Plain fields, not buffers: TorchSharp's Module.to(device)
    // left non-persistent buffers on the CPU (seen on CUDA), so forward moves them to the activations' device itself.
    Tensor _ropeCos, _ropeSin;

    public LlamaBackbone(LlamaConfig config) : base("LlamaModel")
    {
        _config = config;
        embed_tokens = nn.Embedding(config.VocabSize, config.HiddenSize);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(config)).ToArray());
        norm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        // cos/sin of position x frequency, duplicated over both halves: [max_positions, head_dim], float32.
        using (no_grad())
        {
            // Frequencies (with rope scaling) and yarn's attention factor come from the config, the one place they are computed.
            using var invFreq = tensor(config.RopeInverseFrequencies()).to(ScalarType.Float64);
            using var positions = arange(0, config.MaxPositionEmbeddings, dtype: ScalarType.Float64);
            using var freqs = outer(positions, invFreq);
            using var emb = cat([freqs, freqs], -1);
            double attentionFactor = config.RopeAttentionFactor;
            using var cosScaled = emb.cos().mul_(attentionFactor);
            using var sinScaled = emb.sin().mul_(attentionFactor);
            _ropeCos = cosScaled.to(ScalarType.Float32).DetachFromDisposeScope();
            _ropeSin = sinScaled.to(ScalarType.Float32).DetachFromDisposeScope();
        }
        register_module("embed_tokens", embed_tokens);
        register_module("layers", layers);
        register_module("norm", norm);
    }

    public override Tensor forward(Tensor inputIds) => forward(inputIds, null);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _ropeCos.Dispose();
            _ropeSin.Dispose();
        }
        base.Dispose(disposing);
    }

    public Tensor forward(Tensor inputIds, KvCache? cache)
    {
        if (inputIds.dim() != 2) throw new ArgumentException($"input ids must be [batch, sequence]; got shape {SafetensorsFile.FormatShape(inputIds.shape)}");
        int past = cache?.Length ?? 0;
        long seq = inputIds.shape[1];
        if (past + seq > _config.MaxPositionEmbeddings)
            throw new ArgumentException(past == 0
                ? $"sequence of {seq} tokens is longer than max_position_embeddings {_config.MaxPositionEmbeddings}"
                : $"{past} cached + {seq} new tokens exceed max_position_embeddings {_config.MaxPositionEmbeddings}");
        if (cache is not null && past + seq > cache.Capacity)
            throw new ArgumentException($"{past} cached + {seq} new tokens exceed the cache capacity {cache.Capacity}");

        var ids = inputIds.dtype == ScalarType.Int64 ? inputIds : inputIds.to(ScalarType.Int64);
        var h = embed_tokens.forward(ids);
        if (_ropeCos.device_type != h.device_type || _ropeCos.device_index != h.device_index)
        {
            // Detached: forward often runs inside a caller's DisposeScope (Trainer.Step), which must not free the tables.
            var (oldCos, oldSin) = (_ropeCos, _ropeSin);
            _ropeCos = oldCos.to(h.device).DetachFromDisposeScope();
            _ropeSin = oldSin.to(h.device).DetachFromDisposeScope();
            oldCos.Dispose();
            oldSin.Dispose();
        }
        // In the dtype q and k will have: the autocast dtype under bf16-mixed (the projections' output), else h's.
        var ropeDtype = Precision.Current.AutocastDtype ?? h.dtype;
        var cos = _ropeCos.narrow(0, past, seq).to(ropeDtype);
        var sin = _ropeSin.narrow(0, past, seq).to(ropeDtype);
        // Causal masking: SDPA's built-in flag is top-left aligned, which is right only without earlier positions.
        Tensor? mask = null;
        if (past > 0 && seq > 1)
        {
            using var cols = arange(past + seq, device: h.device);
            using var rows = arange(seq, device: h.device) + past;
            mask = cols.unsqueeze(0) <= rows.unsqueeze(1);
        }
        bool causal = past == 0 && seq > 1;
        for (int i = 0; i < layers.Count; i++) h = layers[i].forward(h, cos, sin, cache, i, mask, causal);
        if (cache is not null) cache.Length = past + (int)seq;
        return norm.forward(h);
    }
}

/// <summary>One pre-norm decoder layer: <c>self_attn</c>, <c>mlp</c>, <c>input_layernorm</c>, <c>post_attention_layernorm</c>.</summary>
sealed class LlamaDecoderLayer : nn.Module<Tensor, Tensor>
{
    readonly LlamaAttention self_attn;
    readonly LlamaMlp mlp;
    readonly RmsNorm input_layernorm, post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig config) : base("LlamaDecoderLayer")
    {
        self_attn = new LlamaAttention(config);
        mlp = new LlamaMlp(config);
        input_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        post_attention_layernorm = new RmsNorm(config.HiddenSize, config.RmsNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("call forward(x, cos, sin, ...)");

    public Tensor forward(Tensor x, Tensor cos, Tensor sin, KvCache? cache, int layer, Tensor? mask, bool causal)
    {
        var h = x + self_attn.forward(input_layernorm.forward(x), cos, sin, cache, layer, mask, causal);
        return h + mlp.forward(post_attention_layernorm.forward(h));
    }
}

/// <summary>Grouped-query self-attention with rotary embeddings (<c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>; biases as the config says).</summary>
sealed class LlamaAttention : LoraHost
{
    readonly Slot q_proj, k_proj, v_proj, o_proj;
    readonly int _heads, _kvHeads, _headDim;

    public LlamaAttention(LlamaConfig config) : base("LlamaAttention")
    {
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        q_proj = AddProjection("q_proj", nn.Linear(config.HiddenSize, _heads * _headDim, hasBias: config.QkvBias));
        k_proj = AddProjection("k_proj", nn.Linear(config.HiddenSize, _kvHeads * _headDim, hasBias: config.QkvBias));
        v_proj = AddProjection("v_proj", nn.Linear(config.HiddenSize, _kvHeads * _headDim, hasBias: config.QkvBias));
        o_proj = AddProjection("o_proj", nn.Linear(_heads * _headDim, config.HiddenSize, hasBias: config.OutputBias));
    }

    public override Tensor forward(Tensor x) => throw new NotSupportedException("call forward(x, cos, sin, ...)");

    static Tensor RotateHalf(Tensor x)
    {
        var halves = x.chunk(2, -1);
        return cat([-halves[1], halves[0]], -1);
    }

    public Tensor forward(Tensor x, Tensor cos, Tensor sin, KvCache? cache, int layer, Tensor? mask, bool causal)
    {
        long b = x.shape[0], t = x.shape[1];
        var q = q_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);
        q = q * cos + RotateHalf(q) * sin;
        k = k * cos + RotateHalf(k) * sin;
        if (cache is not null) (k, v) = cache.Append(layer, k, v);
        if (_kvHeads != _heads)
        {
            // Key/value head j serves query heads j*g .. j*g+g-1, as Hugging Face's repeat_kv.
            k = k.repeat_interleave(_heads / _kvHeads, dim: 1);
            v = v.repeat_interleave(_heads / _kvHeads, dim: 1);
        }
        var o = F.scaled_dot_product_attention(q, k, v, attn_mask: mask, is_casual: causal);
        return o_proj.forward(o.transpose(1, 2).reshape(b, t, _heads * _headDim));
    }
}

/// <summary>SwiGLU feed-forward: <c>down_proj(silu(gate_proj(x)) * up_proj(x))</c>.</summary>
sealed class LlamaMlp : LoraHost
{
    readonly Slot gate_proj, up_proj, down_proj;

    public LlamaMlp(LlamaConfig config) : base("LlamaMLP")
    {
        gate_proj = AddProjection("gate_proj", nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: config.MlpBias));
        up_proj = AddProjection("up_proj", nn.Linear(config.HiddenSize, config.IntermediateSize, hasBias: config.MlpBias));
        down_proj = AddProjection("down_proj", nn.Linear(config.IntermediateSize, config.HiddenSize, hasBias: config.MlpBias));
    }

    public override Tensor forward(Tensor x) => down_proj.forward(F.silu(gate_proj.forward(x)) * up_proj.forward(x));
}

/// <summary>Root-mean-square norm computed in float32 (parameter <c>weight</c>), as Hugging Face's LlamaRMSNorm.</summary>
sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter weight;
    readonly double _eps;

    public RmsNorm(int size, double eps) : base("LlamaRMSNorm")
    {
        weight = new Parameter(ones(size));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var x32 = x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1L], keepdim: true) + _eps).rsqrt();
        return weight * normed.to(x.dtype);
    }
}
