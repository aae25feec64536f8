using VectorLm.Distributed;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>
/// Runs one body per rank on threads of this process, each with its own tcp process group on loopback: the real
/// sockets and protocol, without process start-up costs.
/// </summary>
internal static class LocalGroup
{
    /// <summary>Runs <paramref name="body"/> on <paramref name="worldSize"/> ranks; returns each rank's exception (or null).</summary>
    public static Exception?[] TryRun(int worldSize, Action<TrainerContext> body, TimeSpan? collectiveTimeout = null)
    {
        var errors = new Exception?[worldSize];
        var server = TcpStore.Connect("127.0.0.1", 0, isServer: true, TimeSpan.FromSeconds(20));
        int port = server.ServerPort!.Value;
        var threads = Enumerable.Range(0, worldSize).Select(rank => new Thread(() =>
        {
            TrainerContext? ctx = null;
            try
            {
                var store = rank == 0 ? server : TcpStore.Connect("127.0.0.1", port, isServer: false, TimeSpan.FromSeconds(20));
                var group = TcpProcessGroup.Create(store, rank, worldSize, collectiveTimeout ?? TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(20));
                ctx = new TrainerContext(group, rank, CPU, store);
                body(ctx);
            }
            catch (Exception e) { errors[rank] = e; }
            finally { ctx?.Dispose(); }
        }) { IsBackground = true, Name = $"rank{rank}" }).ToList();
        foreach (var t in threads) t.Start();
        foreach (var t in threads)
            if (!t.Join(TimeSpan.FromSeconds(120)))
                throw new TimeoutException("a rank thread hung: the collective neither finished nor failed");
        return errors;
    }

    /// <summary>Runs <paramref name="body"/> on every rank and rethrows the first failure.</summary>
    public static void Run(int worldSize, Action<TrainerContext> body)
    {
        var errors = TryRun(worldSize, body);
        var first = errors.Select((e, r) => (e, r)).FirstOrDefault(x => x.e is not null);
        if (first.e is not null) throw new AggregateException($"rank {first.r} failed: {first.e.Message}", first.e);
    }
}
