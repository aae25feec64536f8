using VectorLm.Hosting;

namespace VectorLm.Distributed.Tests;

/// <summary>World size 1 runs in this process (this test process has no RANK variable).</summary>
public class TrainerHostTests
{
    [Fact]
    public void World_size_1_runs_the_body_in_process_with_the_context_current()
    {
        TrainerContext? seen = null;
        bool wasCurrent = false;
        int code = TrainerHost.Run(new LaunchOptions { Threads = 1 }, (ctx, ct) =>
        {
            seen = ctx;
            wasCurrent = ReferenceEquals(TrainerContextScope.Current, ctx);
            ctx.Barrier();
            Assert.Equal(5, ctx.Broadcast(5));
            return Task.CompletedTask;
        });
        Assert.Equal(0, code);
        Assert.NotNull(seen);
        Assert.Equal(1, seen!.WorldSize);
        Assert.True(wasCurrent);
        Assert.Null(TrainerContextScope.Current);
    }

    [Fact]
    public void An_exception_in_the_body_is_a_non_zero_exit_code()
    {
        int code = TrainerHost.Run(new LaunchOptions { Threads = 1 }, (_, _) => throw new InvalidOperationException("bad step"));
        Assert.Equal(1, code);
    }

    [Fact]
    public void Invalid_options_are_a_usage_error()
    {
        Assert.Equal(2, TrainerHost.Run(new LaunchOptions { WorldSize = 0 }, (_, _) => Task.CompletedTask));
        Assert.Equal(2, TrainerHost.Run(new LaunchOptions { Backend = "mpi" }, (_, _) => Task.CompletedTask));
    }
}
