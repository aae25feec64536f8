using static TorchSharp.torch;

namespace VectorLm.Data;

/// <summary>
/// A training batch: <see cref="InputIds"/> and shifted <see cref="Labels"/>, both <c>[batch, sequence]</c> int64
/// (labels -100 where no loss is taken). Owns its tensors.
/// </summary>
public sealed class Batch(Tensor inputIds, Tensor labels, int[] indices) : IDisposable
{
    /// <summary>Token ids <c>[batch, sequence]</c>.</summary>
    public Tensor InputIds { get; } = inputIds;
    /// <summary>Next-token labels <c>[batch, sequence]</c>, -100 = ignored.</summary>
    public Tensor Labels { get; } = labels;
    /// <summary>Which dataset sequences this batch holds.</summary>
    public IReadOnlyList<int> Indices { get; } = indices;
    /// <summary>Number of tokens in the batch (batch x sequence).</summary>
    public long TokenCount => InputIds.numel();

    /// <summary>Frees both tensors.</summary>
    public void Dispose()
    {
        InputIds.Dispose();
        Labels.Dispose();
    }
}
