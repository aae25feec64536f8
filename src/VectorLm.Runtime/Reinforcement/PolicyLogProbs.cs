using VectorLm.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VectorLm.Reinforcement;

/// <summary>Per-token log-probabilities (and entropies) of a rollout's completion tokens under a model.</summary>
/// <param name="LogProbs">Log-probability of each completion token: <c>[rows, C]</c> float32 (0 on padding is not guaranteed: mask it).</param>
/// <param name="Entropy">Entropy of the model's next-token distribution at each completion position, <c>[rows, C]</c>; no gradient.</param>
public sealed record PolicyLogProbs(Tensor LogProbs, Tensor Entropy)
{
    /// <summary>
    /// One forward of <paramref name="model"/> over prompt + completion of every row of <paramref name="rollout"/>; the
    /// log-probabilities keep their graph (call under <c>no_grad</c> for old-policy or reference values). The model's
    /// distribution is taken at temperature 1, as the engine reports its log-probabilities.
    /// </summary>
    /// <remarks>Only the completion positions' logits go through log-softmax, so memory is <c>rows x C x vocab</c>, not <c>rows x L x vocab</c>.</remarks>
    public static PolicyLogProbs Compute(LlamaModel model, Rollout rollout)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rollout);
        using var scope = NewDisposeScope();
        var logits = model.forward(rollout.InputIds);                                    // [rows, L, V]
        long vocab = logits.shape[2];
        var index = rollout.Positions.unsqueeze(-1).expand(-1, -1, vocab);               // [rows, C, V]
        var selected = logits.gather(1, index);
        var logSoftmax = F.log_softmax(selected.to(ScalarType.Float32), -1);
        var tokenLogProbs = logSoftmax.gather(-1, rollout.CompletionIds.unsqueeze(-1)).squeeze(-1);
        Tensor entropy;
        using (no_grad())
        {
            entropy = -(logSoftmax.exp() * logSoftmax).sum(-1);
        }
        return new PolicyLogProbs(tokenLogProbs.MoveToOuterDisposeScope(), entropy.MoveToOuterDisposeScope());
    }
}
