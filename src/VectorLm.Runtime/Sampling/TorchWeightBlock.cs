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
/// A swap issues one copy for the whole block when the sources of all layers are views of one buffer, row after row
/// within a layer and one fixed stride from layer to layer: how <see cref="Training.FlatAdamW"/> lays out a CUDA
/// parameter group. The trainer's tensors are then read through one strided view of that buffer (with the dtype
/// conversion and the rotary permutation in the same kernel). Otherwise, one copy per source tensor. Where the
/// tensors live is checked at every copy, so re-pointed parameters (an optimizer created after the engine) are
/// followed, never read through a stale view.
/// </remarks>
internal sealed class TorchWeightBlock(Tensor destination, string[][] sources, long[][] shapes, BlockLayout layout, int headDim)
{
    /// <summary>The engine's block [L, rows, cols] (a view of its storage; for <see cref="BlockLayout.Twice"/> [L, 2, n]).</summary>
    public Tensor Destination { get; } = destination;

    /// <summary>Source tensor names per layer: [L][m].</summary>
    public string[][] Sources { get; } = sources;

    /// <summary>Bytes the block occupies in the engine (what a copy writes).</summary>
    public long Bytes => Destination.numel() * Destination.element_size();

    /// <summary>Looks up and shape-checks the block's sources; throws <see cref="ArgumentException"/> naming the first bad one.</summary>
    public Tensor[][] Resolve(IReadOnlyDictionary<string, Tensor> p) => Sources.Select(layer => layer.Select((name, j) =>
    {
        if (!p.TryGetValue(name, out var t)) throw new ArgumentException($"Parameter \"{name}\" is missing.");
        if (!t.shape.SequenceEqual(shapes[j]))
            throw new ArgumentException($"Parameter \"{name}\" has shape [{string.Join(", ", t.shape)}]; expected [{string.Join(", ", shapes[j])}].");
        return t;
    }).ToArray()).ToArray();

    /// <summary>Copies resolved sources into the block. Returns the number of copy kernels issued (1 when stacked).</summary>
    public int Copy(Tensor[][] tensors)
    {
        using var scope = NewDisposeScope();
        if (Stacked(tensors) is { } all)
        {
            Write(Destination, all);
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
    static Tensor? Stacked(Tensor[][] t)
    {
        var first = t[0][0];
        if (!first.is_contiguous()) return null;
        long cols = first.dim() > 1 ? first.shape[1] : 1;
        long origin = first.storage_offset();
        long stride = t.Length > 1 ? t[1][0].storage_offset() - origin : 0;
        nint storage = StorageBase(first);
        long rows = 0;
        for (int i = 0; i < t.Length; i++)
        {
            long at = origin + i * stride;
            foreach (var x in t[i])
            {
                if (x.dtype != first.dtype || x.device_type != first.device_type || !x.is_contiguous() ||
                    (x.dim() > 1 ? x.shape[1] : 1) != cols || x.storage_offset() != at || StorageBase(x) != storage)
                    return null;
                at += x.numel();
                if (i == 0) rows += x.shape[0];
            }
        }
        if (t.Length > 1 && stride < rows * cols) return null;   // overlapping layers: not a parameter buffer
        return first.as_strided([t.Length, rows, cols], [t.Length > 1 ? stride : rows * cols, cols, 1], origin);
    }

    static nint StorageBase(Tensor t) => TensorMemory.DataPointer(t) - (nint)(t.storage_offset() * t.element_size());
}
