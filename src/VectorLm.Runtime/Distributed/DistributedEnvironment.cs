using System.Collections;
using System.Globalization;

namespace VectorLm.Distributed;

/// <summary>
/// Where this process sits in the job, read from the environment a launcher sets: torchrun's variables
/// (<c>RANK</c>, <c>LOCAL_RANK</c>, <c>WORLD_SIZE</c>, <c>LOCAL_WORLD_SIZE</c>, <c>MASTER_ADDR</c>, <c>MASTER_PORT</c>,
/// also set by the VectorLm launcher) or Slurm's (<c>SLURM_PROCID</c>, <c>SLURM_NTASKS</c>, <c>SLURM_LOCALID</c>).
/// </summary>
/// <param name="Rank">Global rank.</param>
/// <param name="LocalRank">Rank on this node (the GPU index).</param>
/// <param name="WorldSize">Number of ranks in the job.</param>
/// <param name="LocalWorldSize">Number of ranks on this node.</param>
/// <param name="MasterAddr">Host of rank 0, where the rendezvous store listens.</param>
/// <param name="MasterPort">Port of the rendezvous store.</param>
/// <param name="Source">"torchrun", "slurm" or "single".</param>
public sealed record DistributedEnvironment(int Rank, int LocalRank, int WorldSize, int LocalWorldSize, string MasterAddr, int MasterPort, string Source)
{
    /// <summary>Default rendezvous port when none is given, as in torch.distributed.</summary>
    public const int DefaultPort = 29500;

    /// <summary>
    /// True when a launcher started this process as one rank of a job: torchrun or the VectorLm launcher (<c>RANK</c>),
    /// or <c>srun</c> with several tasks. A lone Slurm task (<c>SLURM_NTASKS=1</c>, e.g. the shell of
    /// <c>srun --pty bash</c>) is not a rank: from there <c>--nproc-per-node 8</c> launches 8 ranks.
    /// </summary>
    public static bool IsLaunchedRank(IDictionary? env = null)
    {
        env ??= Environment.GetEnvironmentVariables();
        return env.Contains("RANK") || IsSlurmJobRank(env);
    }

    // SLURM_PROCID marks a rank only when the step has several tasks; a missing task count is the launcher's error to report.
    static bool IsSlurmJobRank(IDictionary env) =>
        env["SLURM_PROCID"] is string { Length: > 0 } && env["SLURM_NTASKS"] as string != "1";

    /// <summary>
    /// Reads the rank environment; without one, world size 1 on 127.0.0.1. Invalid values are errors that name the
    /// variable and its value.
    /// </summary>
    public static DistributedEnvironment Read(IDictionary? env = null)
    {
        env ??= Environment.GetEnvironmentVariables();
        string? Get(string name) => env[name] as string is { Length: > 0 } v ? v : null;

        if (Get("RANK") is not null)
        {
            int worldSize = Int("WORLD_SIZE", Get("WORLD_SIZE") ?? throw Missing("WORLD_SIZE", "RANK"), min: 1);
            int rank = Int("RANK", Get("RANK")!, min: 0);
            if (rank >= worldSize) throw new DistributedException($"RANK={rank} is not below WORLD_SIZE={worldSize}");
            int localWorldSize = Get("LOCAL_WORLD_SIZE") is { } lws ? Int("LOCAL_WORLD_SIZE", lws, min: 1) : worldSize;
            int localRank = Get("LOCAL_RANK") is { } lr ? Int("LOCAL_RANK", lr, min: 0) : rank % localWorldSize;
            if (localRank >= localWorldSize) throw new DistributedException($"LOCAL_RANK={localRank} is not below LOCAL_WORLD_SIZE={localWorldSize}");
            return new(rank, localRank, worldSize, localWorldSize,
                Get("MASTER_ADDR") ?? "127.0.0.1",
                Get("MASTER_PORT") is { } p ? Port("MASTER_PORT", p) : DefaultPort, "torchrun");
        }
        if (Get("SLURM_PROCID") is { } procId && IsSlurmJobRank(env))
        {
            int worldSize = Int("SLURM_NTASKS", Get("SLURM_NTASKS") ?? throw Missing("SLURM_NTASKS", "SLURM_PROCID"), min: 1);
            int rank = Int("SLURM_PROCID", procId, min: 0);
            if (rank >= worldSize) throw new DistributedException($"SLURM_PROCID={rank} is not below SLURM_NTASKS={worldSize}");
            int localRank = Get("SLURM_LOCALID") is { } l ? Int("SLURM_LOCALID", l, min: 0) : 0;
            int nodes = Get("SLURM_NNODES") is { } nn ? Int("SLURM_NNODES", nn, min: 1) : 1;
            int localWorldSize = Get("SLURM_NTASKS_PER_NODE") is { } tpn && int.TryParse(tpn, CultureInfo.InvariantCulture, out int t) ? t : Math.Max(1, worldSize / nodes);
            string? addr = Get("MASTER_ADDR");
            if (addr is null && nodes > 1)
                throw new DistributedException("a Slurm job on several nodes needs MASTER_ADDR (the host of rank 0), e.g. " +
                                               "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)");
            // Same job id -> same port on every node, and concurrent jobs on one node do not collide.
            int port = Get("MASTER_PORT") is { } p ? Port("MASTER_PORT", p)
                : Get("SLURM_JOB_ID") is { } job && long.TryParse(job, CultureInfo.InvariantCulture, out long id) ? 15000 + (int)(id % 20000)
                : DefaultPort;
            return new(rank, localRank, worldSize, localWorldSize, addr ?? "127.0.0.1", port, "slurm");
        }
        return new(0, 0, 1, 1, Get("MASTER_ADDR") ?? "127.0.0.1", Get("MASTER_PORT") is { } mp ? Port("MASTER_PORT", mp) : DefaultPort, "single");
    }

    /// <summary>
    /// The CUDA device this rank uses among the <paramref name="visibleDevices"/> it can see: device 0 when only one is
    /// visible (Slurm's <c>--gpus-per-task=1</c>, or <c>CUDA_VISIBLE_DEVICES</c> set per rank), else LOCAL_RANK.
    /// </summary>
    /// <exception cref="DistributedException">LOCAL_RANK names a device this process cannot see.</exception>
    public int CudaDevice(int visibleDevices)
    {
        if (visibleDevices == 1) return 0;
        if (LocalRank < visibleDevices) return LocalRank;
        throw new DistributedException(
            $"LOCAL_RANK={LocalRank} but this process sees {visibleDevices} CUDA device(s) (CUDA_VISIBLE_DEVICES=" +
            $"'{Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES") ?? "(unset)"}'): run at most {visibleDevices} ranks on this node, " +
            "or give each rank one device (Slurm: --gpus-per-task=1)");
    }

    /// <summary>This rank's share of the node's cores: <paramref name="cores"/> / <paramref name="ranksOnNode"/>, at least 1.</summary>
    public static int CoresPerRank(int cores, int ranksOnNode) => Math.Max(1, cores / Math.Max(1, ranksOnNode));

    static DistributedException Missing(string name, string because) => new($"{because} is set but {name} is not; a launcher must set both");

    static int Int(string name, string value, int min)
    {
        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v))
            throw new DistributedException($"{name}='{value}' is not an integer");
        if (v < min) throw new DistributedException($"{name}={v} must be at least {min}");
        return v;
    }

    static int Port(string name, string value)
    {
        int p = Int(name, value, 0);
        if (p > 65535) throw new DistributedException($"{name}={p} is not a TCP port (0 to 65535)");
        return p;
    }
}
