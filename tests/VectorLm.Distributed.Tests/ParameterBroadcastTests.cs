using TorchSharp;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Sampling;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>Ranks hold rank 0's weights from the moment the model meets the job, before the first forward.</summary>
public class ParameterBroadcastTests
{
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 32 };

    static byte[][] Bytes(nn.Module m) => m.parameters().Select(p => p.detach().bytes.ToArray()).ToArray();

    // Each rank starts from its own initialisation (seed = rank), runs `meet`, and reports its weights before and after.
    static (byte[][] Before, byte[][] After)[] MeetOnTwoRanks(Action<TrainerContext, LlamaModel> meet)
    {
        var result = new (byte[][], byte[][])[2];
        DisposeScopeTests.OnRanks(2, ctx =>
        {
            using var model = LlamaModel.Create(Config, seed: 100 + ctx.Rank);
            var before = Bytes(model);
            meet(ctx, model);
            result[ctx.Rank] = (before, Bytes(model));
        });
        Assert.False(result[0].Item1[0].AsSpan().SequenceEqual(result[1].Item1[0]), "the ranks must start different for this test to mean anything");
        return result;
    }

    static void AssertHoldRank0sInitialWeights((byte[][] Before, byte[][] After)[] ranks)
    {
        var rank0 = ranks[0].Before;
        for (int r = 0; r < ranks.Length; r++)
            for (int i = 0; i < rank0.Length; i++)
                Assert.True(rank0[i].AsSpan().SequenceEqual(ranks[r].After[i]), $"rank {r} parameter {i} is not rank 0's initial value");
    }

    [Fact]
    public void Building_the_optimizer_gives_every_rank_rank_0s_weights()
    {
        var ranks = MeetOnTwoRanks((_, model) => Optimizers.AdamW(model, 1e-3).Dispose());
        AssertHoldRank0sInitialWeights(ranks);
    }

    [Fact]
    public void Building_a_Trainer_gives_every_rank_rank_0s_weights()
    {
        var ranks = MeetOnTwoRanks((ctx, model) =>
        {
            var data = new ShardedDataLoader(PackedDataset.FromTokenIds(Enumerable.Range(3, 200), 16), 2, rank: ctx.Rank, worldSize: 2);
            new Trainer(model, data).Dispose();
        });
        AssertHoldRank0sInitialWeights(ranks);
    }

    [Fact]
    public void BroadcastParameters_serves_optimizers_the_SDK_did_not_build()
    {
        var ranks = MeetOnTwoRanks((ctx, model) => ctx.BroadcastParameters(model.parameters()));
        AssertHoldRank0sInitialWeights(ranks);
    }

    [Fact]
    public void A_sampler_made_before_the_broadcast_is_marked_stale_by_it()
    {
        var stale = new bool[2];
        MeetOnTwoRanks((ctx, model) =>
        {
            using var engine = ctx.CreateSampler(model, Tokenizer.ByteLevel(), new EngineOptions { ContextLength = 32, MaxSequences = 1, BatchTokens = 32, Threads = 1 });
            Assert.False(engine.IsStale);
            Optimizers.AdamW(model, 1e-3).Dispose();
            stale[ctx.Rank] = engine.IsStale;
        });
        Assert.Equal([true, true], stale);
    }

    [Fact]
    public void One_rank_broadcasts_nothing()
    {
        using var ctx = TrainerContext.SingleProcess();
        using var model = LlamaModel.Create(Config, seed: 1);
        var before = Bytes(model);
        int notified = 0;
        using var sub = ctx.OnWeightsChanged(() => notified++);
        ctx.BroadcastParameters(model.parameters());
        Assert.Equal(before, Bytes(model));
        Assert.Equal(0, notified);
    }
}
