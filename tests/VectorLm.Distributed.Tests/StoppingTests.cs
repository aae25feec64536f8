using System.Net;
using System.Net.Sockets;
using VectorLm.Hosting;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>A stop request reaches collectives that wait; the signal logic (first stops, second kills, copies merge).</summary>
public class StoppingTests
{
    [Fact]
    public async Task A_collective_waiting_for_a_rank_that_never_comes_stops_when_the_token_is_cancelled()
    {
        using var server = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(20));
        int port = server.ServerPort!.Value;
        using var stop = new CancellationTokenSource();
        TcpProcessGroup? g0 = null, g1 = null;
        var join1 = Task.Run(() =>
        {
            var store = TcpStore.Connect("127.0.0.1", port, isServer: false, TimeSpan.FromSeconds(20));
            g1 = TcpProcessGroup.Create(store, 1, 2, TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(20));
        });
        g0 = TcpProcessGroup.Create(server, 0, 2, TimeSpan.FromMinutes(5), TimeSpan.FromSeconds(20));
        await join1;
        try
        {
            g0.ObserveCancellation(stop.Token);
            // Rank 1 is busy elsewhere; rank 0 would wait the 5-minute collective timeout.
            var waiting = Task.Run(() => g0.AllReduce(ones(3), ReduceOp.Sum, new CallSite("Train", "Loop.cs", 7)));
            await Task.Delay(200);
            Assert.False(waiting.IsCompleted);
            stop.Cancel();
            var e = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
            Assert.Contains("collective #0 on rank 0 was interrupted: the job was asked to stop", e.Message);
            // Later collectives stop at once too.
            Assert.ThrowsAny<OperationCanceledException>(() => g0.Barrier(new CallSite("Train", "Loop.cs", 9)));
        }
        finally
        {
            g0.Dispose();
            g1?.Dispose();
        }
    }

    [Fact]
    public async Task A_stranger_at_a_rank_listener_is_dropped_and_the_group_still_forms()
    {
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var security = new JobSecurity("t0ken", Log: lines.Enqueue);
        using var server = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(20), security: security);
        using var client = TcpStore.Connect("127.0.0.1", server.ServerPort!.Value, isServer: false, TimeSpan.FromSeconds(20), security: security);
        var rank0 = Task.Run(() => TcpProcessGroup.Create(server, 0, 2, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30)));
        // (through rank 1's connection: a store client serves one call at a time, and rank 0's is busy joining)
        var address = IPEndPoint.Parse(client.GetString("tcp/addr/0", TimeSpan.FromSeconds(20)));
        Assert.True(IPAddress.IsLoopback(address.Address), $"rank 0 advertises {address}"); // the store's interface, not 0.0.0.0
        using var stranger = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        stranger.Connect(address);
        stranger.Send([1, 0, 0, 0]); // what today's rank 0 took for "rank 1 is here"
        using var g1 = TcpProcessGroup.Create(client, 1, 2, TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30));
        using var g0 = await rank0;
        var t0 = ones(2);
        var t1 = ones(2);
        var r0 = Task.Run(() => g0.AllReduce(t0, ReduceOp.Sum, new CallSite("m", "f", 1)));
        g1.AllReduce(t1, ReduceOp.Sum, new CallSite("m", "f", 1));
        await r0;
        Assert.Equal(2f, t0[0].item<float>());
        Assert.Contains(lines, l => l.StartsWith("rank 0: closed a connection from 127.0.0.1", StringComparison.Ordinal) && l.Contains("not a VectorLm rank"));
    }

    [Fact]
    public void The_first_signal_cancels_a_copy_within_the_window_is_the_same_request_and_a_later_one_kills()
    {
        var now = new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        var killed = new List<int>();
        using var signals = new StopSignals(killed.Add, () => now, register: false);
        Assert.False(signals.Token.IsCancellationRequested);

        signals.OnSignal(Posix.SIGINT);
        Assert.True(signals.Token.IsCancellationRequested);
        Assert.Equal(130, signals.ExitCode);

        now += TimeSpan.FromMilliseconds(300); // the launcher's forwarded copy of the terminal's Ctrl+C
        signals.OnSignal(Posix.SIGINT);
        Assert.Empty(killed);

        now += StopSignals.DuplicateWindow; // the user pressing Ctrl+C again
        signals.OnSignal(Posix.SIGTERM);
        Assert.Equal([Posix.SIGTERM], killed);
        Assert.Equal(130, signals.ExitCode); // the exit status follows the signal that asked to stop
    }

    [Fact]
    public void SIGTERM_maps_to_exit_143()
    {
        using var signals = new StopSignals(_ => { }, register: false);
        signals.OnSignal(Posix.SIGTERM);
        Assert.Equal(TrainerHost.TerminatedExitCode, signals.ExitCode);
        Assert.True(signals.AwaitSignal(TimeSpan.Zero));
    }
}
