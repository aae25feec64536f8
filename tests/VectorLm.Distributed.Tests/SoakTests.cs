using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>Tests that measure this process's memory: they run alone, so other tests' allocations do not count.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MemoryMeasurement
{
    public const string Name = "memory measurement";
}

[Collection(MemoryMeasurement.Name)]
public partial class SoakTests
{
    const int WarmupSteps = 50, Steps = 500;

    // glibc keeps freed blocks in per-thread arenas; trimming them makes resident memory follow what is in use.
    [LibraryImport("libc")]
    private static partial int malloc_trim(nuint pad);

    static long ResidentBytes()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        if (OperatingSystem.IsLinux()) malloc_trim(0);
        using var self = Process.GetCurrentProcess();
        return self.WorkingSet64;
    }

    [Fact]
    public void Five_hundred_steps_at_world_size_2_keep_memory_flat()
    {
        // A tiny model, so the steps take seconds; what leaks per step (a gradient, a buffer, a handle) would show as
        // steady growth in live tensors and, for anything sizeable, in resident memory.
        var config = LlamaConfig.Tiny with { NumHiddenLayers = 1, MaxPositionEmbeddings = 16 };
        var dataset = PackedDataset.FromTokenIds(Enumerable.Range(0, 4000).Select(i => 3 + i % 250), 16);
        var live = new long[2][];
        var resident = new long[2];
        using var warm = new Barrier(2, _ => resident[0] = ResidentBytes());
        using var done = new Barrier(2, _ => resident[1] = ResidentBytes());
        DisposeScopeTests.OnRanks(2, ctx =>
        {
            using var model = LlamaModel.Create(config);
            using var trainer = new Trainer(model, new ShardedDataLoader(dataset, 2, rank: ctx.Rank, worldSize: 2),
                new TrainerOptions { WarmupSteps = 5, TotalSteps = Steps });
            void Step()
            {
                using var scope = NewDisposeScope();
                trainer.Step();
            }
            for (int i = 0; i < WarmupSteps; i++) Step();
            warm.SignalAndWait();
            long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            for (int i = WarmupSteps; i < Steps; i++) Step();
            live[ctx.Rank] = [before, DisposeScopeManager.Statistics.ThreadTotalLiveCount];
            done.SignalAndWait();
        });
        foreach (var l in live) Assert.True(l[0] == l[1], $"{l[1] - l[0]} tensors outlived {Steps - WarmupSteps} steps");
        long growth = resident[1] - resident[0];
        // Generous against allocator noise, yet a quarter of what keeping one gradient set (250 kB) per step would add.
        Assert.True(growth < 32L << 20, $"resident memory grew by {growth >> 20} MiB over {Steps - WarmupSteps} steps");
    }
}
