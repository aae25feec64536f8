namespace VectorLm;

/// <summary>The process group that carries a job's collectives (torch.distributed's <c>backend</c>).</summary>
public enum DistributedBackend
{
    /// <summary>Pick for the device: <see cref="Nccl"/> on CUDA, else <see cref="Tcp"/>. Only an option, never a context's backend.</summary>
    Auto,
    /// <summary>No process group: a single process (<see cref="TrainerContext.SingleProcess"/>).</summary>
    None,
    /// <summary>The SDK's own TCP group: CPU tensors, and every collective checks that all ranks called the same thing.</summary>
    Tcp,
    /// <summary>NCCL for CUDA tensors, with a tcp group beside it for CPU tensors and the object collectives.</summary>
    Nccl,
}

/// <summary>The lower-case names of <see cref="DistributedBackend"/> used on command lines and in YAML, as torchrun spells them.</summary>
static class DistributedBackendNames
{
    /// <summary>The values <c>--backend</c> accepts.</summary>
    public static readonly IReadOnlyList<string> Launchable = ["auto", "tcp", "nccl"];

    public static string Name(this DistributedBackend backend) => backend.ToString().ToLowerInvariant();

    /// <summary>Parses a launch value; throws naming <paramref name="what"/> and the accepted values otherwise.</summary>
    public static DistributedBackend Parse(string value, string what = "--backend") => value.ToLowerInvariant() switch
    {
        "auto" => DistributedBackend.Auto,
        "tcp" => DistributedBackend.Tcp,
        "nccl" => DistributedBackend.Nccl,
        _ => throw new ArgumentException($"{what} must be auto, tcp or nccl, got '{value}'"),
    };
}
