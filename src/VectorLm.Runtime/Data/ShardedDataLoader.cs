using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Data;

/// <summary>Where a <see cref="ShardedDataLoader"/> stands: the epoch and how many of its batches were handed out.</summary>
public readonly record struct DataPosition(int Epoch, int BatchInEpoch);

/// <summary>
/// Batches of a <see cref="PackedDataset"/> for one rank, reshuffled every epoch from a seed and sharded like
/// PyTorch's <c>DistributedSampler</c>: each epoch's permutation is cut to a multiple of the world size
/// (<c>drop_last=True</c>, so ranks never overlap) and rank r takes positions r, r + W, r + 2W, ...; every rank gets
/// the same number of sequences and therefore of batches.
/// </summary>
public sealed class ShardedDataLoader
{
    readonly PackedDataset _dataset;
    readonly Device? _device;
    int[] _epochOrder = [];
    int _orderEpoch = -1;

    /// <summary>The dataset.</summary>
    public PackedDataset Dataset => _dataset;
    /// <summary>Sequences per batch (the last batch of an epoch may be smaller).</summary>
    public int BatchSize { get; }
    /// <summary>Shuffle seed; the same on every rank.</summary>
    public long Seed { get; }
    /// <summary>This rank.</summary>
    public int Rank { get; }
    /// <summary>Number of ranks.</summary>
    public int WorldSize { get; }
    /// <summary>Whether each epoch is shuffled (otherwise dataset order).</summary>
    public bool Shuffle { get; }
    /// <summary>Sequences this rank sees per epoch.</summary>
    public int SamplesPerRank { get; }
    /// <summary>Batches per epoch, equal on every rank.</summary>
    public int BatchesPerEpoch { get; }
    /// <summary>The next batch's epoch and index; save it with a checkpoint and restore it with <see cref="Seek"/>.</summary>
    public DataPosition Position { get; private set; }

    /// <exception cref="InvalidDataException">The dataset has fewer sequences than ranks.</exception>
    public ShardedDataLoader(PackedDataset dataset, int batchSize, long seed = 0, int rank = 0, int worldSize = 1, bool shuffle = true, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {worldSize})");
        _dataset = dataset;
        _device = device;
        BatchSize = batchSize;
        Seed = seed;
        Rank = rank;
        WorldSize = worldSize;
        Shuffle = shuffle;
        SamplesPerRank = dataset.Count / worldSize;
        if (SamplesPerRank == 0)
            throw new InvalidDataException($"the dataset has {dataset.Count} sequences, fewer than the {worldSize} ranks; every rank needs at least one");
        BatchesPerEpoch = (SamplesPerRank + batchSize - 1) / batchSize;
    }

    /// <summary>The dataset indices this rank sees in <paramref name="epoch"/>, in order.</summary>
    public int[] RankIndices(int epoch)
    {
        var order = Enumerable.Range(0, _dataset.Count).ToArray();
        if (Shuffle)
        {
            // Same permutation on every rank: seeded by (seed, epoch) only. System.Random with an int seed is stable across .NET versions.
            var rng = new Random(unchecked((int)(Seed * 1_000_003 + epoch)));
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }
        var mine = new int[SamplesPerRank];
        for (int k = 0; k < SamplesPerRank; k++) mine[k] = order[Rank + k * WorldSize];
        return mine;
    }

    /// <summary>Continues from <paramref name="position"/> (for resuming from a checkpoint).</summary>
    public void Seek(DataPosition position)
    {
        if (position.Epoch < 0 || position.BatchInEpoch < 0 || position.BatchInEpoch > BatchesPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"batch index must be in [0, {BatchesPerEpoch}]");
        Position = position;
    }

    /// <summary>The next batch (moving on to the next epoch when one ends).</summary>
    public Batch Next()
    {
        if (Position.BatchInEpoch >= BatchesPerEpoch) Position = new DataPosition(Position.Epoch + 1, 0);
        if (_orderEpoch != Position.Epoch)
        {
            _epochOrder = RankIndices(Position.Epoch);
            _orderEpoch = Position.Epoch;
        }
        int start = Position.BatchInEpoch * BatchSize;
        int count = Math.Min(BatchSize, SamplesPerRank - start);
        int t = _dataset.SequenceLength;
        var inputs = new long[count * t];
        var labels = new long[count * t];
        var indices = new int[count];
        for (int b = 0; b < count; b++)
        {
            indices[b] = _epochOrder[start + b];
            _dataset.Inputs(indices[b]).CopyTo(inputs.AsSpan(b * t, t));
            _dataset.Labels(indices[b]).CopyTo(labels.AsSpan(b * t, t));
        }
        Position = Position with { BatchInEpoch = Position.BatchInEpoch + 1 };
        var inputTensor = tensor(inputs, [count, t]);
        var labelTensor = tensor(labels, [count, t]);
        if (_device is not null && _device.type != DeviceType.CPU)
        {
            using var i0 = inputTensor;
            using var l0 = labelTensor;
            inputTensor = i0.to(_device);
            labelTensor = l0.to(_device);
        }
        return new Batch(inputTensor, labelTensor, indices);
    }
}
