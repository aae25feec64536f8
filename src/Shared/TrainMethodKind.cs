// Shared by the VLM0001+ analyzers and the VectorLm source generator (see TrainerShapeRules.cs).
namespace VectorLm.Analyzers.TrainerShape;

/// <summary>How a trainer's training method is shaped.</summary>
internal enum TrainMethodKind
{
    /// <summary>No valid training method.</summary>
    None,
    /// <summary><c>void Train(TrainerContext)</c>.</summary>
    Sync,
    /// <summary><c>Task TrainAsync(TrainerContext, CancellationToken)</c>.</summary>
    Async,
    /// <summary><c>void Train(TrainerContext, CancellationToken)</c>: the token is cancelled by SIGINT/SIGTERM.</summary>
    SyncCancellable,
}
