namespace VectorLm.Generators.Model;

/// <summary>The training method a trainer declares.</summary>
internal enum TrainKind
{
    /// <summary><c>void Train(TrainerContext)</c>.</summary>
    Sync,
    /// <summary><c>Task TrainAsync(TrainerContext, CancellationToken)</c>.</summary>
    Async,
    /// <summary><c>void Train(TrainerContext, CancellationToken)</c>.</summary>
    SyncCancellable,
}
