using System.Collections.Concurrent;
using VectorLm.Distributed.Nccl;
using TorchSharp;
using DeviceType = TorchSharp.DeviceType;

namespace VectorLm.Distributed.Tests;

/// <summary>The NCCL watchdog against a fake device: CI has no GPU, and the loop's decisions are what matter.</summary>
public class NcclWatchdogTests
{
    sealed class FakeDevice : NcclWatchdog.IDevice
    {
        readonly ConcurrentDictionary<nint, bool> _done = new();
        long _next;
        public volatile NcclResult Error = NcclResult.Success;
        public int Aborts;
        public int Live => _done.Count;

        public void AttachThread() { }
        public nint RecordCompletion() { var m = (nint)Interlocked.Increment(ref _next); _done[m] = false; return m; }
        public bool IsComplete(nint marker) => _done[marker];
        public void Release(nint marker) => _done.TryRemove(marker, out _);
        public NcclResult AsyncError() => Error;
        public void Abort() => Interlocked.Increment(ref Aborts);
        public void Complete(nint marker) => _done[marker] = true;
        public void CompleteAll() { foreach (var k in _done.Keys) _done[k] = true; }
    }

    static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(10);

    static string? WaitForFailure(NcclWatchdog w, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (w.Failure is null && DateTime.UtcNow < deadline) Thread.Sleep(5);
        return w.Failure;
    }

    [Fact]
    public void A_collective_that_never_completes_aborts_the_communicator_and_names_it_and_the_ranks()
    {
        var device = new FakeDevice();
        var failures = new ConcurrentQueue<string>();
        using var w = new NcclWatchdog(device, TimeSpan.FromMilliseconds(300), () => "Rank 1 of 2 closed its connection to rank 0 (exited or crashed?).", failures.Enqueue, Poll);
        w.Track("collective #7 (AllReduce(Sum) float32[4] at Train.cs:12) on rank 0 of 2");
        var failure = WaitForFailure(w, TimeSpan.FromSeconds(10));
        Assert.NotNull(failure);
        Assert.Contains("collective #7 (AllReduce(Sum) float32[4] at Train.cs:12) on rank 0 of 2 did not complete within 0.3 s", failure);
        Assert.Contains("Rank 1 of 2 closed its connection", failure);
        Assert.Contains("The NCCL communicator was aborted.", failure);
        Assert.Equal(1, device.Aborts);
        Assert.Equal(failure, Assert.Single(failures));
        var e = Assert.Throws<CollectiveTimeoutException>(w.ThrowIfFailed); // the next collective fails at once
        Assert.Equal(failure, e.Message);
    }

    [Fact]
    public void Collectives_that_complete_in_time_are_released_and_never_fail()
    {
        var device = new FakeDevice();
        using var w = new NcclWatchdog(device, TimeSpan.FromMilliseconds(400), () => "", _ => { }, Poll);
        for (int i = 0; i < 10; i++)
        {
            w.Track($"collective #{i}");
            Thread.Sleep(60); // each one alone is quick; together they take longer than the timeout
            device.CompleteAll();
        }
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (device.Live > 0 && DateTime.UtcNow < deadline) Thread.Sleep(5);
        Assert.Equal(0, device.Live);
        Assert.Null(w.Failure);
        Assert.Equal(0, device.Aborts);
        w.ThrowIfFailed();
    }

    [Fact]
    public void An_asynchronous_NCCL_error_fails_at_once_naming_the_pending_collective()
    {
        var device = new FakeDevice();
        using var w = new NcclWatchdog(device, TimeSpan.FromMinutes(10), () => "Rank 3 of 4 closed its connection.", _ => { }, Poll);
        w.Track("collective #2 (Broadcast float32[8] from 0) on rank 1 of 4");
        device.Error = NcclResult.RemoteError;
        var failure = WaitForFailure(w, TimeSpan.FromSeconds(10));
        Assert.NotNull(failure);
        Assert.StartsWith("NCCL reported ncclRemoteError", failure);
        Assert.Contains("during collective #2 (Broadcast float32[8] from 0) on rank 1 of 4", failure);
        Assert.Contains("Rank 3 of 4 closed its connection.", failure);
        Assert.Equal(1, device.Aborts);
    }

    [Fact]
    public void A_stop_request_aborts_the_communicator_without_reporting_a_failure()
    {
        var device = new FakeDevice();
        var failures = new ConcurrentQueue<string>();
        using var cts = new CancellationTokenSource();
        using var w = new NcclWatchdog(device, TimeSpan.FromMinutes(10), () => "", failures.Enqueue, Poll);
        w.ObserveCancellation(cts.Token);
        w.Track("collective #0");
        cts.Cancel();
        Assert.Equal(1, device.Aborts); // a rank stuck in a kernel gets out
        Assert.Contains("asked to stop", w.Failure);
        Thread.Sleep(50);
        Assert.Empty(failures);
    }

    [Fact]
    public void A_tensor_on_another_device_is_named_before_any_rank_commits()
    {
        Assert.Null(NcclProcessGroup.DeviceProblem(DeviceType.CUDA, 1, 1));
        Assert.Equal("this rank's NCCL communicator is on cuda:0, but the tensor is on cuda:1; move it with .to(ctx.Device) first",
            NcclProcessGroup.DeviceProblem(DeviceType.CUDA, 1, 0));
        Assert.StartsWith("this rank's NCCL communicator is on cuda:0, but the tensor is on cpu;", NcclProcessGroup.DeviceProblem(DeviceType.CPU, -1, 0));
    }

    [Fact]
    public void Communicator_init_that_never_returns_fails_after_the_timeout()
    {
        using var never = new ManualResetEventSlim();
        var e = Assert.Throws<CollectiveTimeoutException>(() =>
            NcclProcessGroup.WithTimeout(() => { never.Wait(); return 1; }, TimeSpan.FromMilliseconds(200), () => "rank 1: the NCCL communicator did not form"));
        Assert.Equal("rank 1: the NCCL communicator did not form", e.Message);
        never.Set(); // let the abandoned thread end
        Assert.Equal(7, NcclProcessGroup.WithTimeout(() => 7, TimeSpan.FromSeconds(30), () => "unused"));
        var failed = Assert.Throws<NcclException>(() => NcclProcessGroup.WithTimeout<int>(
            () => { NcclNative.Check(NcclResult.SystemError, "ncclCommInitRank"); return 0; }, TimeSpan.FromSeconds(30), () => "unused"));
        Assert.StartsWith("ncclCommInitRank failed: ncclSystemError", failed.Message);
    }
}
