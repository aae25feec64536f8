using System.Text.RegularExpressions;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>Projections of a decoder layer that share an input, and so one adapter matmul pair in the torch engine.</summary>
internal enum LoraGroup
{
    /// <summary>q_proj, k_proj, v_proj (input: the attention norm's output).</summary>
    Qkv,
    /// <summary>o_proj (input: the attention output).</summary>
    O,
    /// <summary>gate_proj, up_proj (input: the MLP norm's output).</summary>
    GateUp,
    /// <summary>down_proj (input: the SwiGLU activation).</summary>
    Down,
}

/// <summary>
/// A LoRA adapter inside the torch engine, applied on top of the base weights, which stay as they are: decoding adds
/// <c>scale · B (A x)</c> to each adapted group of projections. A sync after an optimizer step writes only these
/// tensors (adapter bytes), one copy per adapted module when the trainer's adapter lives in one flat buffer.
/// </summary>
/// <remarks>
/// <para>Per group of projections sharing an input (<see cref="LoraGroup"/>), stacked over layers: <c>A</c>
/// [L, ΣR, in] holds the group's adapted modules' A matrices one after another, <c>B</c> [L, rows, ΣR] their B
/// matrices as blocks on the diagonal (zero elsewhere), so a group costs two kernels per
/// layer (<c>x Aᵀ</c>, then an <c>addmm</c> into the base projection's output, with the scale as its alpha).</para>
/// <para>Why not merge <c>W + scale·B A</c> into the engine's copy on sync: that rewrites every adapted base matrix
/// per step (the full swap's bytes for all seven projections), which is what an adapter sync exists to avoid; the
/// unmerged form adds 2·r/hidden of the matmul work, under 4% at r = 16 and hidden 1024.</para>
/// </remarks>
internal sealed partial class TorchLoraAdapter : IDisposable
{
    sealed record Projection(string Name, string Path, LoraGroup Group);

    static readonly Projection[] Projections =
    [
        new("q_proj", "self_attn.q_proj", LoraGroup.Qkv), new("k_proj", "self_attn.k_proj", LoraGroup.Qkv),
        new("v_proj", "self_attn.v_proj", LoraGroup.Qkv), new("o_proj", "self_attn.o_proj", LoraGroup.O),
        new("gate_proj", "mlp.gate_proj", LoraGroup.GateUp), new("up_proj", "mlp.up_proj", LoraGroup.GateUp),
        new("down_proj", "mlp.down_proj", LoraGroup.Down),
    ];

    sealed class Group
    {
        public required Tensor A, B;       // [L, ΣR, in], [L, rows, ΣR]
        public required Tensor[] AT, BT;   // per layer: A [ΣR, in] and B [rows, ΣR], transposed for matmul
        public required double Alpha;      // the modules' common scale, or 1 when it is folded into B
    }

    readonly Group?[] _groups = new Group?[4];
    readonly TorchWeightBlock[] _blocks;
    readonly (TorchWeightBlock Block, double Scale)[] _folded;   // B blocks whose scale is multiplied in on copy
    readonly string[] _modules;
    readonly long[] _ranks;
    readonly Tensor[] _a;   // the A matrices it was built for (a rank check is skipped for the same tensor)
    readonly List<Tensor> _owned = new();

    TorchLoraAdapter(LlamaArchitecture a, Device device, ScalarType dtype, IReadOnlyList<LoraWeights> weights)
    {
        _modules = weights.Select(w => w.Module).ToArray();
        _ranks = weights.Select(w => w.A.shape[0]).ToArray();
        _a = weights.Select(w => (Tensor)w.A).ToArray();
        // Which projections are adapted, with their rank and scale, from layer 0; every layer must match.
        var byName = new Dictionary<(int Layer, string Projection), LoraWeights>();
        foreach (var w in weights)
        {
            var m = ModuleName().Match(w.Module);
            var projection = m.Success ? Projections.FirstOrDefault(p => p.Path == m.Groups[2].Value) : null;
            int layer = m.Success ? int.Parse(m.Groups[1].Value) : -1;
            if (projection is null || layer >= a.LayerCount)
                throw new NotSupportedException($"The torch engine cannot apply an adapter on \"{w.Module}\"; it adapts q/k/v/o/gate/up/down_proj of the decoder layers.");
            byName[(layer, projection.Name)] = w;
        }
        var targets = Projections.Where(p => byName.ContainsKey((0, p.Name))).ToArray();
        for (int i = 0; i < a.LayerCount; i++)
            foreach (var p in targets)
            {
                var w = byName.GetValueOrDefault((i, p.Name))
                    ?? throw new NotSupportedException($"The adapter has model.layers.0.{p.Path} but not model.layers.{i}.{p.Path}; the torch engine needs the same modules in every layer.");
                var first = byName[(0, p.Name)];
                if (!w.A.shape.SequenceEqual(first.A.shape) || !w.B.shape.SequenceEqual(first.B.shape) || w.Scale != first.Scale)
                    throw new NotSupportedException($"{w.Module}: rank or scale differs from model.layers.0.{p.Path}; the torch engine needs one per projection.");
            }
        if (byName.Count != targets.Length * a.LayerCount)
            throw new NotSupportedException("The adapter's modules are not the same in every layer; the torch engine needs the same modules in every layer.");

        int qDim = a.HeadCount * a.HeadDim, kvDim = a.KvHeadCount * a.HeadDim, hidden = a.HiddenSize, ffn = a.IntermediateSize;
        (long Offset, long Rows, long In) Place(string name) => name switch
        {
            "q_proj" => (0, qDim, hidden), "k_proj" => (qDim, kvDim, hidden), "v_proj" => (qDim + kvDim, kvDim, hidden),
            "o_proj" => (0, hidden, qDim), "gate_proj" => (0, ffn, hidden), "up_proj" => (ffn, ffn, hidden), _ => (0, hidden, ffn),
        };
        long[] groupRows = [qDim + 2 * kvDim, hidden, 2 * ffn, hidden];
        int layers = a.LayerCount;
        var blocks = new List<TorchWeightBlock>();
        var folded = new List<(TorchWeightBlock, double)>();
        using var scope = NewDisposeScope();
        foreach (var group in Enum.GetValues<LoraGroup>())
        {
            var members = targets.Where(p => p.Group == group).ToArray();
            if (members.Length == 0) continue;
            long rank = members.Sum(p => byName[(0, p.Name)].A.shape[0]);
            long input = Place(members[0].Name).In;
            // Zeros: B's blocks off the diagonal are never written.
            var groupA = Keep(zeros([layers, rank, input], dtype, device));
            var groupB = Keep(zeros([layers, groupRows[(int)group], rank], dtype, device));
            var scales = members.Select(p => byName[(0, p.Name)].Scale).Distinct().ToArray();
            long column = 0;
            foreach (var p in members)
            {
                var w0 = byName[(0, p.Name)];
                long r = w0.A.shape[0];
                var (offset, rows, _) = Place(p.Name);
                string[][] Names(string matrix) => Enumerable.Range(0, layers).Select(i => new[] { $"model.layers.{i}.{p.Path}.{matrix}.weight" }).ToArray();
                long at = column;   // copied: the storage lambdas run later
                blocks.Add(new TorchWeightBlock(Names("lora_A"), [w0.A.shape], BlockLayout.Plain, dtype, _ => groupA.narrow(1, at, r)));
                var b = new TorchWeightBlock(Names("lora_B"), [w0.B.shape], BlockLayout.Plain, dtype, _ => groupB.narrow(1, offset, rows).narrow(2, at, r));
                blocks.Add(b);
                if (scales.Length > 1) folded.Add((b, w0.Scale));
                column += r;
            }
            _groups[(int)group] = new Group
            {
                A = groupA, B = groupB,
                AT = Enumerable.Range(0, layers).Select(i => Keep(groupA[i].t())).ToArray(),
                BT = Enumerable.Range(0, layers).Select(i => Keep(groupB[i].t())).ToArray(),
                Alpha = scales.Length == 1 ? scales[0] : 1,
            };
            Bytes += (groupA.numel() + groupB.numel()) * groupA.element_size();
        }
        _blocks = blocks.ToArray();
        _folded = folded.ToArray();
        SyncBytes = _blocks.Sum(b => b.Bytes);
    }

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)$")]
    private static partial Regex ModuleName();

    Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        _owned.Add(t);
        return t;
    }

    /// <summary>Bytes the adapter occupies in the engine.</summary>
    public long Bytes { get; }

    /// <summary>Bytes a sync writes (the adapter's own values, without the zero blocks).</summary>
    public long SyncBytes { get; }

    /// <summary>Copy kernels the last <see cref="CopyWeights"/> issued.</summary>
    public int LastCopyKernels { get; private set; }

    /// <summary>Builds an adapter for <paramref name="weights"/> in the engine's dtype and copies their values in.</summary>
    /// <exception cref="NotSupportedException">The adapter does not have the same modules, rank and scale in every layer.</exception>
    public static TorchLoraAdapter Create(LlamaArchitecture architecture, Device device, ScalarType dtype, IReadOnlyList<LoraWeights> weights)
    {
        if (weights.Count == 0) throw new ArgumentException("An adapter needs at least one module.", nameof(weights));
        var adapter = new TorchLoraAdapter(architecture, device, dtype, weights);
        try
        {
            adapter.CopyWeights(weights);
        }
        catch
        {
            adapter.Dispose();
            throw;
        }
        return adapter;
    }

    /// <summary>True when <paramref name="weights"/> has the modules and ranks this adapter was built for.</summary>
    public bool Fits(IReadOnlyList<LoraWeights> weights)
    {
        if (weights.Count != _modules.Length) return false;
        for (int i = 0; i < weights.Count; i++)
            if (weights[i].Module != _modules[i] || (!ReferenceEquals(weights[i].A, _a[i]) && weights[i].A.shape[0] != _ranks[i])) return false;
        return true;
    }

    /// <summary>Overwrites the adapter's tensors with <paramref name="weights"/> (shapes checked first). Returns the bytes written.</summary>
    public long CopyWeights(IReadOnlyList<LoraWeights> weights)
    {
        if (!Fits(weights)) throw new ArgumentException("The weights do not have this adapter's modules and ranks.", nameof(weights));
        var sources = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var w in weights)
        {
            sources[w.Module + ".lora_A.weight"] = w.A;
            sources[w.Module + ".lora_B.weight"] = w.B;
        }
        foreach (var block in _blocks) block.Prepare(sources);
        using var _ = no_grad();
        int kernels = 0;
        foreach (var block in _blocks) kernels += block.Sync(alias: false);
        foreach (var (block, scale) in _folded)
        {
            block.Current.mul_(scale);
            kernels++;
        }
        LastCopyKernels = kernels;
        return SyncBytes;
    }

    /// <summary>
    /// Folds the adapter into the engine's base weights of each adapted group (<paramref name="weights"/>: the stacked
    /// q/k/v, o, gate/up and down matrices [L, rows, in]): <c>W += scale · B A</c>, one batched matmul and an add per group. The
    /// base must have been copied in fresh just before (a merged adapter cannot be taken out again exactly).
    /// </summary>
    public void MergeInto(IReadOnlyDictionary<LoraGroup, Tensor> weights)
    {
        using var _ = no_grad();
        for (int g = 0; g < _groups.Length; g++)
            if (_groups[g] is { } group)
            {
                // TorchSharp binds no in-place baddbmm: the product goes through one temporary of the group's size.
                using var delta = group.B.bmm(group.A);
                weights[(LoraGroup)g].add_(delta, group.Alpha);
            }
    }

    /// <summary>y + scale · B (A x) for the adapted projections of <paramref name="group"/> in <paramref name="layer"/> (y itself when none is adapted).</summary>
    public Tensor Apply(Tensor y, Tensor x, int layer, LoraGroup group) =>
        _groups[(int)group] is { } g ? addmm(y, x.matmul(g.AT[layer]), g.BT[layer], 1, (float)g.Alpha) : y;

    public void Dispose()
    {
        foreach (var block in _blocks) block.Dispose();
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
    }
}
