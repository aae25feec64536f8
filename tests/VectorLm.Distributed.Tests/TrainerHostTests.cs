using VectorLm.Hosting;

namespace VectorLm.Distributed.Tests;

/// <summary>World size 1 runs in this process (this test process has no RANK variable).</summary>
[Collection(TorchGlobalRng.Name)] // TrainerHost seeds torch
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
            Assert.Equal(5, ctx.BroadcastObject(5));
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
    public void The_launch_precision_reaches_the_context_and_the_model()
    {
        string? seen = null;
        TorchSharp.torch.ScalarType? dtype = null;
        int code = TrainerHost.Run(new LaunchOptions { Threads = 1, Precision = "bf16-true" }, (ctx, _) =>
        {
            seen = ctx.Precision.Name;
            using var model = VectorLm.Models.LlamaModel.Create(VectorLm.Models.LlamaConfig.Tiny);
            dtype = model.parameters().First().dtype;
            return Task.CompletedTask;
        });
        Assert.Equal(0, code);
        Assert.Equal("bf16-true", seen);
        Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, dtype);
        // Without --precision: the device's default (32-true on this CPU-only machine).
        TrainerHost.Run(new LaunchOptions { Threads = 1 }, (ctx, _) => { seen = ctx.Precision.Name; return Task.CompletedTask; });
        Assert.Equal("32-true", seen);
        Assert.Equal(2, TrainerHost.Run(new LaunchOptions { Precision = "fp8" }, (_, _) => Task.CompletedTask));
    }

    [Fact]
    public void Invalid_options_are_a_usage_error()
    {
        Assert.Equal(2, TrainerHost.Run(new LaunchOptions { NProcPerNode = 0 }, (_, _) => Task.CompletedTask));
        Assert.Equal(2, TrainerHost.Run(new LaunchOptions { Backend = (DistributedBackend)42 }, (_, _) => Task.CompletedTask));
    }
}
