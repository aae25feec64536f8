using System.Collections;
using VectorLm.Sampling;

namespace VectorLm.Distributed.Tests;

/// <summary>Where ranks come from and what they use, with fake environments (Slurm, one device per task).</summary>
public class PlacementTests
{
    static IDictionary Env(params string[] pairs)
    {
        var d = new Hashtable();
        for (int i = 0; i < pairs.Length; i += 2) d[pairs[i]] = pairs[i + 1];
        return d;
    }

    [Fact]
    public void The_shell_of_srun_pty_bash_is_not_a_rank_so_world_size_launches_ranks()
    {
        // srun --pty bash: one task, SLURM_PROCID=0, SLURM_NTASKS=1, plus the allocation's other variables.
        var shell = Env("SLURM_PROCID", "0", "SLURM_NTASKS", "1", "SLURM_LOCALID", "0", "SLURM_NNODES", "1", "SLURM_JOB_ID", "4242");
        Assert.False(DistributedEnvironment.IsLaunchedRank(shell));
        var env = DistributedEnvironment.Read(shell);
        Assert.Equal(("single", 1, 0), (env.Source, env.WorldSize, env.Rank));
    }

    [Fact]
    public void Tasks_of_a_multi_task_srun_are_ranks()
    {
        var task = Env("SLURM_PROCID", "5", "SLURM_NTASKS", "8", "SLURM_LOCALID", "1", "SLURM_NNODES", "2", "SLURM_NTASKS_PER_NODE", "4", "MASTER_ADDR", "n0");
        Assert.True(DistributedEnvironment.IsLaunchedRank(task));
        var env = DistributedEnvironment.Read(task);
        Assert.Equal(("slurm", 8, 5, 1, 4), (env.Source, env.WorldSize, env.Rank, env.LocalRank, env.LocalWorldSize));
        // A rank started by the VectorLm launcher inside a Slurm shell is a torchrun-style rank.
        Assert.True(DistributedEnvironment.IsLaunchedRank(Env("SLURM_PROCID", "0", "SLURM_NTASKS", "1", "RANK", "3", "WORLD_SIZE", "8")));
    }

    [Theory]
    [InlineData(3, 1, 0)] // --gpus-per-task=1: each task sees its own GPU as device 0
    [InlineData(3, 8, 3)] // all of the node's GPUs visible: LOCAL_RANK picks one
    [InlineData(0, 1, 0)]
    public void The_cuda_device_follows_what_the_rank_can_see(int localRank, int visible, int expected)
    {
        var env = new DistributedEnvironment(localRank, localRank, 8, 8, "127.0.0.1", 1, "torchrun");
        Assert.Equal(expected, env.CudaDevice(visible));
    }

    [Fact]
    public void A_local_rank_past_the_visible_devices_is_a_clear_error()
    {
        var env = new DistributedEnvironment(3, 3, 8, 8, "127.0.0.1", 1, "torchrun");
        var e = Assert.Throws<DistributedException>(() => env.CudaDevice(2));
        Assert.Contains("LOCAL_RANK=3 but this process sees 2 CUDA device(s)", e.Message);
        Assert.Contains("--gpus-per-task=1", e.Message);
    }

    [Theory]
    [InlineData(64, 1, 32)]
    [InlineData(64, 8, 4)]
    [InlineData(16, 8, 1)]
    [InlineData(2, 4, 1)]
    [InlineData(1, 1, 1)]
    public void Engine_threads_default_to_half_the_cores_divided_by_the_ranks_on_the_node(int cores, int ranks, int expected)
    {
        Assert.Equal(expected, LlamaSamplingEngine.DefaultThreads(cores, ranks));
    }

    [Fact]
    public void Torch_threads_default_to_the_cores_divided_by_the_ranks_on_the_node()
    {
        Assert.Equal(8, DistributedEnvironment.CoresPerRank(64, 8));
        Assert.Equal(1, DistributedEnvironment.CoresPerRank(4, 8));
        Assert.Equal(4, DistributedEnvironment.CoresPerRank(4, 0));
    }
}
