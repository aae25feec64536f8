namespace VectorLm.Hosting;

/// <summary>The job-level options every generated trainer accepts on its command line.</summary>
public sealed record LaunchOptions
{
    /// <summary>
    /// Ranks to run on this node, one process per device (torchrun's <c>--nproc-per-node</c>). The job's world size is
    /// <c>NProcPerNode * NNodes</c>.
    /// </summary>
    public int NProcPerNode { get; init; } = 1;
    /// <summary>The process group to form; <see cref="DistributedBackend.Auto"/> picks nccl on CUDA, else tcp.</summary>
    public DistributedBackend Backend { get; init; } = DistributedBackend.Auto;
    /// <summary>Rendezvous host; defaults to 127.0.0.1.</summary>
    public string? MasterAddr { get; init; }
    /// <summary>Rendezvous port; a free one is picked when null.</summary>
    public int? MasterPort { get; init; }
    /// <summary>Number of nodes.</summary>
    public int NNodes { get; init; } = 1;
    /// <summary>This node's index in [0, NNodes).</summary>
    public int NodeRank { get; init; }
    /// <summary>Seed for torch and the data order; every rank uses the same.</summary>
    public int Seed { get; init; }
    /// <summary>
    /// <c>32-true</c>, <c>tf32</c>, <c>bf16-mixed</c> or <c>bf16-true</c> (see <see cref="Training.Precision"/>); null
    /// picks bf16-mixed on CUDA and 32-true on the CPU.
    /// </summary>
    public string? Precision { get; init; }
    /// <summary>Torch intra-op threads per rank; null picks cores / ranks.</summary>
    public int? Threads { get; init; }
    /// <summary>
    /// How long a collective waits for the other ranks before failing with the names of those missing; null uses
    /// <c>VECTORLM_COLLECTIVE_TIMEOUT</c> (seconds) or 10 minutes.
    /// </summary>
    public TimeSpan? CollectiveTimeout { get; init; }
    /// <summary>How long ranks wait for each other when the job starts; null uses <c>VECTORLM_RENDEZVOUS_TIMEOUT</c> or 5 minutes.</summary>
    public TimeSpan? RendezvousTimeout { get; init; }
}
