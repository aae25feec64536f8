using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

public class DesyncTests
{
    [Fact]
    public void Barrier_on_one_rank_and_AllReduce_on_another_fail_on_both_with_each_ranks_call()
    {
        var errors = LocalGroup.TryRun(2, ctx =>
        {
            if (ctx.Rank == 0) ctx.Barrier();
            else ctx.AllReduce(ones(4));
        });
        foreach (var e in errors)
        {
            var d = Assert.IsType<CollectiveDesyncException>(e);
            Assert.Contains("rank 0: #0 Barrier at DesyncTests.cs:", d.Message);
            Assert.Contains("rank 1: #0 AllReduce(Sum) float32[4] at DesyncTests.cs:", d.Message);
        }
        Assert.Equal(errors[0]!.Message, errors[1]!.Message);
    }

    [Fact]
    public void Tensors_of_different_sizes_are_a_clear_error_on_every_rank()
    {
        var errors = LocalGroup.TryRun(3, ctx => ctx.AllReduce(ones(ctx.Rank == 2 ? 5 : 4)));
        foreach (var e in errors)
        {
            var d = Assert.IsType<CollectiveDesyncException>(e);
            Assert.Contains("AllReduce: the tensors differ across ranks", d.Message);
            Assert.Contains("rank 1: #0 AllReduce(Sum) float32[4]", d.Message);
            Assert.Contains("rank 2: #0 AllReduce(Sum) float32[5]", d.Message);
        }
    }

    [Fact]
    public void Different_dtypes_and_broadcast_roots_are_errors_too()
    {
        var dtype = LocalGroup.TryRun(2, ctx => ctx.AllGather(ones(3, dtype: ctx.Rank == 0 ? TorchSharp.torch.ScalarType.Float32 : TorchSharp.torch.ScalarType.Float64)));
        Assert.All(dtype, e => Assert.Contains("float64[3]", Assert.IsType<CollectiveDesyncException>(e).Message));
        var roots = LocalGroup.TryRun(2, ctx => ctx.Broadcast(ones(3), src: ctx.Rank));
        Assert.All(roots, e => Assert.Contains("(root 1)", Assert.IsType<CollectiveDesyncException>(e).Message));
    }

    [Fact]
    public void A_rank_that_never_arrives_makes_the_others_fail_naming_it()
    {
        using var released = new ManualResetEventSlim();
        var errors = LocalGroup.TryRun(3, ctx =>
        {
            if (ctx.Rank == 2) { released.Wait(TimeSpan.FromSeconds(30)); return; }
            try { ctx.AllReduce(ones(2)); }
            finally { if (ctx.Rank == 0) released.Set(); }
        }, collectiveTimeout: TimeSpan.FromSeconds(1.5));
        var timeout = Assert.IsType<CollectiveTimeoutException>(errors[0]);
        Assert.Contains("rank 2 did not arrive", timeout.Message);
        Assert.Contains("rank 1 waited in AllReduce(Sum)", timeout.Message);
        Assert.Equal(timeout.Message, Assert.IsType<CollectiveTimeoutException>(errors[1]).Message);
        Assert.Null(errors[2]);
    }

    [Fact]
    public void A_rank_that_leaves_makes_the_next_collective_fail_instead_of_hanging()
    {
        var errors = LocalGroup.TryRun(2, ctx =>
        {
            if (ctx.Rank == 1) return; // disposes its group: the connections close
            Thread.Sleep(200);
            ctx.AllReduce(ones(1000));
        });
        var e = Assert.IsAssignableFrom<DistributedException>(errors[0]);
        Assert.Contains("rank 1", e.Message);
        Assert.Contains("closed the connection", e.Message);
    }

    [Fact]
    public void After_a_failure_the_group_refuses_further_collectives_with_the_first_reason()
    {
        var second = new Exception?[2];
        LocalGroup.TryRun(2, ctx =>
        {
            try { if (ctx.Rank == 0) ctx.Barrier(); else ctx.AllReduce(ones(1)); }
            catch (CollectiveDesyncException) { }
            second[ctx.Rank] = Record.Exception(() => ctx.Barrier());
        });
        Assert.All(second, e => Assert.Contains("unusable after an earlier failure: collective desync", e!.Message));
    }
}
