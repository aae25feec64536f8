using System.Collections;
using System.Net;
using System.Net.Sockets;
using VectorLm.Hosting;

namespace VectorLm.Distributed.Tests;

public class RendezvousTests
{
    [Fact]
    public void A_port_in_use_is_a_clear_error()
    {
        using var squatter = new TcpListener(IPAddress.IPv6Any, 0);
        squatter.Server.DualMode = true;
        squatter.Start();
        int port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var e = Assert.Throws<DistributedException>(() => TcpStore.Connect("127.0.0.1", port, isServer: true, TimeSpan.FromSeconds(5)));
        Assert.Contains($"rank 0's rendezvous store (MASTER_PORT) cannot listen on port {port}: it is already in use", e.Message);
    }

    [Fact]
    public void An_unreachable_master_is_a_clear_error_after_the_timeout()
    {
        int port = RankLauncher.FreePort(); // nobody listens there
        var e = Assert.Throws<DistributedException>(() => TcpStore.Connect("127.0.0.1", port, isServer: false, TimeSpan.FromSeconds(1), "rank 1 of 2"));
        Assert.Contains($"could not reach the rendezvous store at 127.0.0.1:{port} within 1 s (rank 1 of 2)", e.Message);
        Assert.Contains("MASTER_ADDR and MASTER_PORT", e.Message);
    }

    [Fact]
    public void Ranks_that_never_join_are_named_after_the_timeout()
    {
        using var store = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5));
        var e = Assert.Throws<DistributedException>(() => TcpProcessGroup.Create(store, 0, 3, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1)));
        Assert.Contains("ranks 1, 2 of world size 3 never joined", e.Message);
    }

    [Fact]
    public void Two_processes_claiming_one_rank_is_an_error()
    {
        using var store = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5));
        store.Add("tcp/claim/1", 1);
        var e = Assert.Throws<DistributedException>(() => TcpProcessGroup.Create(store, 1, 2, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1)));
        Assert.Contains("two processes claim rank 1", e.Message);
    }

    [Fact]
    public void Ranks_started_with_different_world_sizes_are_an_error()
    {
        using var store = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5));
        store.Set("tcp/world_size", "4");
        var e = Assert.Throws<DistributedException>(() => TcpProcessGroup.Create(store, 1, 2, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1)));
        Assert.Contains("rank 1 was started with WORLD_SIZE=2 but rank 0 with WORLD_SIZE=4", e.Message);
    }

    [Theory]
    [InlineData(-1, 2)]
    [InlineData(2, 2)]
    [InlineData(0, 0)]
    public void An_invalid_rank_or_world_size_is_rejected(int rank, int worldSize)
    {
        using var store = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => TcpProcessGroup.Create(store, rank, worldSize, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1)));
    }

    static IDictionary Env(params string[] pairs)
    {
        var d = new Hashtable();
        for (int i = 0; i < pairs.Length; i += 2) d[pairs[i]] = pairs[i + 1];
        return d;
    }

    [Fact]
    public void The_torchrun_environment_is_read()
    {
        var env = DistributedEnvironment.Read(Env("RANK", "5", "LOCAL_RANK", "1", "WORLD_SIZE", "8", "LOCAL_WORLD_SIZE", "4", "MASTER_ADDR", "node0", "MASTER_PORT", "1234"));
        Assert.Equal(new DistributedEnvironment(5, 1, 8, 4, "node0", 1234, "torchrun"), env);
    }

    [Fact]
    public void The_slurm_environment_is_read()
    {
        var env = DistributedEnvironment.Read(Env("SLURM_PROCID", "3", "SLURM_NTASKS", "4", "SLURM_LOCALID", "1", "SLURM_NNODES", "2", "MASTER_ADDR", "n1", "SLURM_JOB_ID", "777"));
        Assert.Equal(new DistributedEnvironment(3, 1, 4, 2, "n1", 15777, "slurm"), env);
        var e = Assert.Throws<DistributedException>(() => DistributedEnvironment.Read(Env("SLURM_PROCID", "0", "SLURM_NTASKS", "4", "SLURM_NNODES", "2")));
        Assert.Contains("needs MASTER_ADDR", e.Message);
    }

    [Theory]
    [InlineData("RANK", "2", "WORLD_SIZE", "2", "RANK=2 is not below WORLD_SIZE=2")]
    [InlineData("RANK", "x", "WORLD_SIZE", "2", "RANK='x' is not an integer")]
    [InlineData("RANK", "0", "WORLD_SIZE", "0", "WORLD_SIZE=0 must be at least 1")]
    [InlineData("RANK", "0", "MASTER_PORT", "1", "RANK is set but WORLD_SIZE is not")]
    public void A_bad_environment_is_an_error_naming_the_variable(string k1, string v1, string k2, string v2, string message)
    {
        var e = Assert.Throws<DistributedException>(() => DistributedEnvironment.Read(Env(k1, v1, k2, v2)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void A_bad_master_port_is_an_error()
    {
        var e = Assert.Throws<DistributedException>(() => DistributedEnvironment.Read(Env("RANK", "0", "WORLD_SIZE", "1", "MASTER_PORT", "70000")));
        Assert.Contains("MASTER_PORT=70000 is not a TCP port", e.Message);
    }

    [Theory]
    [InlineData(0, 1, 0, "--nproc-per-node must be at least 1")]
    [InlineData(2, 0, 0, "--nnodes must be at least 1")]
    [InlineData(2, 2, 2, "--node-rank must be in [0, 2)")]
    public void Invalid_launch_options_are_rejected(int worldSize, int nnodes, int nodeRank, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => RankLauncher.Validate(new LaunchOptions { NProcPerNode = worldSize, NNodes = nnodes, NodeRank = nodeRank, MasterAddr = "x" }));
        Assert.Contains(message, e.Message);
    }
}
