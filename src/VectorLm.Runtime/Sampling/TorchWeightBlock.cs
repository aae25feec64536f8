using VectorLm.Distributed;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>How a <see cref="TorchWeightBlock"/> rearranges its source rows on the way into the engine.</summary>
internal enum BlockLayout
{
    /// <summary>Rows as they are.</summary>
    Plain,
    /// <summary>
    /// q/k rows per head from Hugging Face's rotate-half pairing (i, i + D/2) to adjacent pairs (2i, 2i + 1): row
    /// 2i + j of a head takes source row j·D/2 + i, so rotary embedding is one complex multiply.
    /// </summary>
    Rotary,
    /// <summary>A vector stored twice (<c>[w, w]</c>), for the layer norm over <c>[x, -x]</c>.</summary>
    Twice,
}

/// <summary>
/// One block of the torch engine's weights, stacked over layers (<c>[L, rows, cols]</c>), and the trainer tensors that
/// fill it: per layer, source tensors whose rows go one after another into the block (q then k; gate then up; one
/// tensor for most), rearranged as <see cref="BlockLayout"/> says. 1-D sources (norms, biases) count as one column.
/// </summary>
/// <remarks>
/// <para>A swap issues one copy for the whole block when the sources of all layers are views of one buffer, row after
/// row within a layer and one fixed stride from layer to layer: how <see cref="Training.FlatAdamW"/> lays out a CUDA
/// parameter group. The trainer's tensors are then read through one strided view of that buffer (with the dtype
/// conversion and the rotary permutation in the same kernel). Otherwise, one copy per source tensor.</para>
/// <para>The plan (sources, the strided view) is kept between swaps, since working it out costs more host time than
/// the copy on a GPU. Every swap checks that each source is still the same tensor object at the same storage address
/// and offset (two native calls per tensor), and works the plan out again otherwise, so re-pointed parameters (an
/// optimizer created after the engine, <c>Module.to</c>) are followed, never read through a stale view.</para>
/// </remarks>
internal sealed class TorchWeightBlock(Tensor destination, string[][] sources, long[][] shapes, BlockLayout layout, int headDim) : IDisposable
{
    Tensor[][]? _tensors;                      // the sources the plan was made for, [L][m]
    (nint Storage, long Offset)[][]? _where;   // where each of them lived then
    Tensor? _stacked;                          // all of them as one view [L, rows, cols], when they allow it

    /// <summary>The engine's block [L, rows, cols] (a view of its storage; for <see cref="BlockLayout.Twice"/> [L, 2, n]).</summary>
    public Tensor Destination { get; } = destination;

    /// <summary>Bytes the block occupies in the engine (what a copy writes).</summary>
    public long Bytes => Destination.numel() * Destination.element_size();

    /// <summary>
    /// Makes sure the plan fits the sources in <paramref name="p"/>, working it out again (names and shapes checked)
    /// when a source changed; throws <see cref="ArgumentException"/> naming the first bad source, writing nothing.
    /// </summary>
    public void Prepare(IReadOnlyDictionary<string, Tensor> p)
    {
        if (PlanHolds(p)) return;
        var tensors = sources.Select(layer => layer.Select((name, j) =>
        {
            if (!p.TryGetValue(name, out var t)) throw new ArgumentException($"Parameter \"{name}\" is missing.");
            if (!t.shape.SequenceEqual(shapes[j]))
                throw new ArgumentException($"Parameter \"{name}\" has shape [{string.Join(", ", t.shape)}]; expected [{string.Join(", ", shapes[j])}].");
            return t;
        }).ToArray()).ToArray();
        DropPlan();
        _where = tensors.Select(layer => layer.Select(t => (TensorMemory.StorageBase(t), t.storage_offset())).ToArray()).ToArray();
        _stacked = Stacked(tensors, _where)?.DetachFromDisposeScope();
        _tensors = tensors;
    }

    bool PlanHolds(IReadOnlyDictionary<string, Tensor> p)
    {
        if (_tensors is null) return false;
        for (int i = 0; i < sources.Length; i++)
            for (int j = 0; j < sources[i].Length; j++)
            {
                var cached = _tensors[i][j];
                if (!p.TryGetValue(sources[i][j], out var t) || !ReferenceEquals(t, cached) || t.IsInvalid ||
                    TensorMemory.StorageBase(t) != _where![i][j].Storage || t.storage_offset() != _where[i][j].Offset)
                    return false;
            }
        return true;
    }

    /// <summary>True when some source (as prepared) requires gradients, i.e. is being trained.</summary>
    public bool Trainable => _tensors!.Any(layer => layer.Any(t => t.requires_grad));

    /// <summary>Copies the prepared sources into the block. Returns the number of copy kernels issued (1 when stacked).</summary>
    public int Copy()
    {
        var tensors = _tensors ?? throw new InvalidOperationException("Prepare the block before copying.");
        using var scope = NewDisposeScope();
        if (_stacked is not null)
        {
            Write(Destination, _stacked);
            return 1;
        }
        int copies = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            var dst = Destination.narrow(0, i, 1);
            long row = 0;
            foreach (var t in tensors[i])
            {
                long rows = t.shape[0], cols = t.dim() > 1 ? t.shape[1] : 1;
                Write(layout == BlockLayout.Twice ? dst : dst.narrow(1, row, rows), t.view(1, rows, cols));
                row += rows;
                copies++;
            }
        }
        return copies;
    }

    void Write(Tensor dst, Tensor src)
    {
        long l = src.shape[0], rows = src.shape[1], cols = src.shape[2];
        switch (layout)
        {
            case BlockLayout.Rotary:
                long heads = rows / headDim;
                dst.view(l, heads, headDim / 2, 2, cols).copy_(src.view(l, heads, 2, headDim / 2, cols).transpose(2, 3));
                break;
            case BlockLayout.Twice:
                dst.copy_(src.view(l, 1, rows));   // broadcasts over the two halves
                break;
            default:
                dst.copy_(src);
                break;
        }
    }

    /// <summary>
    /// All sources as one view [L, rows, cols] of their common storage, or null when they do not lie row after row
    /// within each layer at one stride from layer to layer.
    /// </summary>
    static Tensor? Stacked(Tensor[][] t, (nint Storage, long Offset)[][] where)
    {
        var first = t[0][0];
        long cols = first.dim() > 1 ? first.shape[1] : 1;
        long origin = where[0][0].Offset;
        long stride = t.Length > 1 ? where[1][0].Offset - origin : 0;
        long rows = 0;
        for (int i = 0; i < t.Length; i++)
        {
            long at = origin + i * stride;
            for (int j = 0; j < t[i].Length; j++)
            {
                var x = t[i][j];
                if (x.dtype != first.dtype || !x.is_contiguous() || (x.dim() > 1 ? x.shape[1] : 1) != cols ||
                    where[i][j].Offset != at || where[i][j].Storage != where[0][0].Storage)
                    return null;
                at += x.numel();
                if (i == 0) rows += x.shape[0];
            }
        }
        if (t.Length > 1 && stride < rows * cols) return null;   // overlapping layers: not a parameter buffer
        return first.as_strided([t.Length, rows, cols], [t.Length > 1 ? stride : rows * cols, cols, 1], origin);
    }

    void DropPlan()
    {
        _stacked?.Dispose();
        _stacked = null;
        _tensors = null;
        _where = null;
    }

    public void Dispose() => DropPlan();
}
