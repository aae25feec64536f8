using VectorLm.Distributed;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>How a <see cref="TorchWeightBlock"/> places its source rows in the engine.</summary>
internal enum BlockLayout
{
    /// <summary>Rows as they are: the block is <c>[L, rows, cols]</c>.</summary>
    Plain,
    /// <summary>A vector stored twice (<c>[L, 2, n]</c> holding <c>[w, w]</c>), for the layer norm over <c>[x, -x]</c>.</summary>
    Twice,
}

/// <summary>
/// One block of the torch engine's weights, stacked over layers (<c>[L, rows, cols]</c>), and the trainer tensors that
/// fill it: per layer, source tensors whose rows go one after another into the block (q, k then v; gate then up; one
/// tensor for most). 1-D sources (norms, biases) count as one column.
/// </summary>
/// <remarks>
/// <para>When the sources of all layers are views of one buffer, row after row within a layer and one fixed stride
/// from layer to layer (how <see cref="Training.FlatAdamW"/> lays out a CUDA parameter group; any single contiguous
/// tensor too), they are one strided view of that buffer. A block that may alias and whose view has the engine's dtype
/// then IS that view: the engine reads the trainer's live weights and a swap copies nothing (see
/// <see cref="Sync"/>). Otherwise a swap writes the block's own storage, allocated on first need (an aliased block
/// holds none): one copy through the view (with the dtype conversion in the same kernel), or one per source tensor.</para>
/// <para>The plan (sources, the strided view) is kept between swaps, since working it out costs more host time than
/// the copy on a GPU. Every swap checks that each source is still the same tensor object at the same storage address
/// and offset (two native calls per tensor), and works the plan out again otherwise, so re-pointed parameters (an
/// optimizer created after the engine, <c>Module.to</c>) are followed, never read through a stale view.</para>
/// </remarks>
internal sealed class TorchWeightBlock : IDisposable
{
    readonly string[][] _sources;
    readonly long[][] _shapes;
    readonly BlockLayout _layout;
    readonly ScalarType _dtype;
    readonly Func<long[], Tensor> _allocate;
    readonly bool _mayAlias;
    Tensor? _storage;                          // the engine's own copy, made on first need
    Tensor? _alias;                            // the trainer's buffer the engine reads instead, when aliased
    int _plan, _aliasPlan;                     // plan counter, and the plan _alias was made from
    Tensor[][]? _tensors;                      // the sources the plan was made for, [L][m]
    (nint Storage, long Offset)[][]? _where;   // where each of them lived then
    Tensor? _stacked;                          // all of them as one view [L, rows, cols], when they allow it

    /// <param name="sources">Per layer, the Hugging Face names of the tensors stacked in the block, in order.</param>
    /// <param name="shapes">Each source's shape (the same in every layer).</param>
    /// <param name="layout">How the rows are placed.</param>
    /// <param name="dtype">The engine's dtype.</param>
    /// <param name="allocate">Makes the engine's own storage of the shape given (<see cref="Shape"/>; called on first need; the block disposes it).</param>
    /// <param name="mayAlias">Whether the engine may read the trainer's buffer instead of a copy (weight matrices only: see <see cref="Sync"/>).</param>
    public TorchWeightBlock(string[][] sources, long[][] shapes, BlockLayout layout, ScalarType dtype, Func<long[], Tensor> allocate, bool mayAlias = false)
    {
        _sources = sources;
        _shapes = shapes;
        _layout = layout;
        _dtype = dtype;
        _allocate = allocate;
        _mayAlias = mayAlias && layout == BlockLayout.Plain;
        long rows = shapes.Sum(s => s[0]), cols = shapes[0].Length > 1 ? shapes[0][1] : 1;
        Shape = layout == BlockLayout.Twice ? [sources.Length, 2, rows] : [sources.Length, rows, cols];
        Bytes = Shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype);
    }

    static long ElementSize(ScalarType t) => t switch
    {
        ScalarType.Float32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 => 2,
        _ => throw new NotSupportedException($"engine dtype {t}"),
    };

    /// <summary>The block's shape in the engine: <c>[L, rows, cols]</c>, or <c>[L, 2, n]</c> for <see cref="BlockLayout.Twice"/>.</summary>
    public long[] Shape { get; }

    /// <summary>Bytes of the block in the engine's dtype (what a copy writes).</summary>
    public long Bytes { get; }

    /// <summary>True while the engine reads the trainer's buffer for this block instead of its own copy.</summary>
    public bool Aliased => _alias is not null;

    /// <summary>True while the block holds storage of its own (allocated on first need, freed when it becomes aliased).</summary>
    public bool HoldsStorage => _storage is not null;

    /// <summary>
    /// What the engine reads, <see cref="Shape"/>: the trainer's buffer while <see cref="Aliased"/>, else the engine's
    /// own storage (throws before the first sync). Another tensor after a sync that changed it (see <see cref="Generation"/>):
    /// views of it must be made again.
    /// </summary>
    public Tensor Current => _alias ?? _storage ?? throw new InvalidOperationException("The block was never synced: it has no weights to read.");

    /// <summary>Changes whenever <see cref="Current"/> becomes another tensor (aliased, re-pointed, or back to the engine's copy).</summary>
    public int Generation { get; private set; }

    Tensor Storage
    {
        get
        {
            if (_storage is null)
            {
                _storage = _allocate(Shape).DetachFromDisposeScope();
                Generation++;
            }
            return _storage;
        }
    }

    /// <summary>
    /// Makes sure the plan fits the sources in <paramref name="p"/>, working it out again (names and shapes checked)
    /// when a source changed; throws <see cref="ArgumentException"/> naming the first bad source. What the engine
    /// reads does not change until <see cref="Sync"/>.
    /// </summary>
    public void Prepare(IReadOnlyDictionary<string, Tensor> p)
    {
        if (PlanHolds(p)) return;
        var tensors = _sources.Select(layer => layer.Select((name, j) =>
        {
            if (!p.TryGetValue(name, out var t)) throw new ArgumentException($"Parameter \"{name}\" is missing.");
            if (!t.shape.SequenceEqual(_shapes[j]))
                throw new ArgumentException($"Parameter \"{name}\" has shape [{string.Join(", ", t.shape)}]; expected [{string.Join(", ", _shapes[j])}].");
            return t;
        }).ToArray()).ToArray();
        DropPlan();
        _where = tensors.Select(layer => layer.Select(t => (TensorMemory.StorageBase(t), t.storage_offset())).ToArray()).ToArray();
        using (no_grad()) _stacked = Stacked(tensors, _where)?.DetachFromDisposeScope();   // a plain view, no autograd node
        _tensors = tensors;
        _plan++;
    }

    bool PlanHolds(IReadOnlyDictionary<string, Tensor> p)
    {
        if (_tensors is null) return false;
        for (int i = 0; i < _sources.Length; i++)
            for (int j = 0; j < _sources[i].Length; j++)
            {
                var cached = _tensors[i][j];
                if (!p.TryGetValue(_sources[i][j], out var t) || !ReferenceEquals(t, cached) || t.IsInvalid ||
                    TensorMemory.StorageBase(t) != _where![i][j].Storage || t.storage_offset() != _where[i][j].Offset)
                    return false;
            }
        return true;
    }

    /// <summary>True when some source (as prepared) requires gradients, i.e. is being trained.</summary>
    public bool Trainable => _tensors!.Any(layer => layer.Any(t => t.requires_grad));

    /// <summary>True when the prepared sources can be read in place: one strided view, in the engine's dtype, of a block that may alias.</summary>
    bool CanAlias => _mayAlias && _stacked is not null && _stacked.dtype == _dtype;

    /// <summary>
    /// Brings the block up to date with the prepared sources. With <paramref name="alias"/>, when the sources can be
    /// read in place, the block becomes a view of the trainer's buffer (the same view as long as the plan holds) and
    /// its own storage is freed: nothing is copied. Otherwise the sources are copied into the engine's own storage.
    /// Returns the number of copy kernels issued (0 aliased, 1 through a strided view, else one per source tensor).
    /// </summary>
    public int Sync(bool alias)
    {
        if (_tensors is null) throw new InvalidOperationException("Prepare the block before a sync.");
        if (alias && CanAlias)
        {
            if (_alias is null || _aliasPlan != _plan)
            {
                _alias?.Dispose();
                using (no_grad()) _alias = _stacked!.alias().DetachFromDisposeScope();   // its own handle: the plan's view may be dropped first
                _aliasPlan = _plan;
                _storage?.Dispose();
                _storage = null;
                Generation++;
            }
            return 0;
        }
        StopAliasing();
        return Copy();
    }

    /// <summary>
    /// Stops reading the trainer's buffer: copies what the block reads now into the engine's own storage (for an
    /// adapter, which must never write into the trainer's weights). Returns the bytes written (0 when not aliased).
    /// </summary>
    public long TakeOwnCopy()
    {
        if (_alias is null) return 0;
        using (no_grad()) Storage.copy_(_alias);
        StopAliasing();
        return Bytes;
    }

    void StopAliasing()
    {
        if (_alias is null) return;
        _alias.Dispose();
        _alias = null;
        Generation++;
    }

    int Copy()
    {
        var tensors = _tensors!;
        var destination = Storage;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        if (_stacked is not null)
        {
            Write(destination, _stacked);
            return 1;
        }
        int copies = 0;
        for (int i = 0; i < tensors.Length; i++)
        {
            var dst = destination.narrow(0, i, 1);
            long row = 0;
            foreach (var t in tensors[i])
            {
                long rows = t.shape[0], cols = t.dim() > 1 ? t.shape[1] : 1;
                Write(_layout == BlockLayout.Twice ? dst : dst.narrow(1, row, rows), t.view(1, rows, cols));
                row += rows;
                copies++;
            }
        }
        return copies;
    }

    void Write(Tensor dst, Tensor src)
    {
        if (_layout == BlockLayout.Twice) dst.copy_(src.view(src.shape[0], 1, src.shape[1]));   // broadcasts over the two halves
        else dst.copy_(src);
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

    public void Dispose()
    {
        DropPlan();
        _alias?.Dispose();
        _alias = null;
        _storage?.Dispose();
        _storage = null;
    }
}
