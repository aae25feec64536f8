namespace VectorLm;

/// <summary>How <see cref="TrainerContext.AllReduce"/> combines the ranks' tensors, as in torch.distributed.</summary>
public enum ReduceOp
{
    /// <summary>Element-wise sum.</summary>
    Sum,
    /// <summary>Element-wise mean over ranks.</summary>
    Avg,
    /// <summary>Element-wise minimum.</summary>
    Min,
    /// <summary>Element-wise maximum.</summary>
    Max,
}
