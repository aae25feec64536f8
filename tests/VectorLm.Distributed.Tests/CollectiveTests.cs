using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

public class CollectiveTests
{
    // Each rank's input: distinct per rank and per element, so a wrong segment or rank shows up.
    static Tensor Input(int rank, long n, ScalarType dtype) =>
        (arange(n, dtype: ScalarType.Float64) % 97 * (rank + 1) - 3 * rank).to_type(dtype);

    static Tensor Expected(int worldSize, long n, ScalarType dtype, ReduceOp op)
    {
        var all = stack(Enumerable.Range(0, worldSize).Select(r => Input(r, n, dtype).to_type(ScalarType.Float64)).ToArray());
        var e = op switch
        {
            ReduceOp.Sum => all.sum([0L]),
            ReduceOp.Avg => all.mean([0]),
            ReduceOp.Min => all.min(0).values,
            _ => all.max(0).values,
        };
        return e.to_type(dtype);
    }

    public static TheoryData<int, ScalarType, ReduceOp, long> AllReduceCases()
    {
        var data = new TheoryData<int, ScalarType, ReduceOp, long>();
        foreach (int ws in new[] { 1, 2, 3, 4 })
        foreach (long n in new long[] { 0, 1, 7, 300_001 })
        {
            data.Add(ws, ScalarType.Float32, ReduceOp.Sum, n);
            data.Add(ws, ScalarType.Float64, ReduceOp.Avg, n);
            data.Add(ws, ScalarType.Int64, ReduceOp.Min, n);
            data.Add(ws, ScalarType.Float32, ReduceOp.Max, n);
        }
        data.Add(3, ScalarType.Byte, ReduceOp.Max, 1001);
        data.Add(2, ScalarType.Int64, ReduceOp.Sum, 1001);
        data.Add(3, ScalarType.Float32, ReduceOp.Avg, 10);
        return data;
    }

    [Theory]
    [MemberData(nameof(AllReduceCases))]
    public void AllReduce_matches_the_reduction_of_all_inputs_bit_identically_on_every_rank(int worldSize, ScalarType dtype, ReduceOp op, long n)
    {
        var expected = Expected(worldSize, n, dtype, op);
        var results = new Tensor[worldSize];
        LocalGroup.Run(worldSize, ctx =>
        {
            var t = Input(ctx.Rank, n, dtype);
            var same = ctx.AllReduce(t, op);
            Assert.Same(t, same);
            results[ctx.Rank] = t;
        });
        foreach (var r in results)
        {
            Assert.Equal(dtype, r.dtype);
            if (dtype == ScalarType.Byte || dtype == ScalarType.Int64) Assert.True(r.eq(expected).all().item<bool>());
            else Assert.True(r.allclose(expected, rtol: 1e-6, atol: 1e-6), $"{op} {dtype} n={n}: wrong values");
            Assert.Equal(results[0].bytes.ToArray(), r.bytes.ToArray());
        }
    }

    [Theory]
    [InlineData(ScalarType.Float16, 2048.0)]  // f16: 2048 + 1 rounds back to 2048 (spacing 2 there)
    [InlineData(ScalarType.BFloat16, 256.0)]  // bf16: 256 + 1 rounds back to 256
    public void AllReduce_of_half_precision_sums_in_float32(ScalarType dtype, double big)
    {
        // Ranks hold big, 1, 1: the exact sum big + 2 is representable, but any order of additions in the tensor's
        // own precision that adds a 1 to big first loses it (a 3-rank ring starts two of its three chunks that way).
        var results = new Tensor[3];
        LocalGroup.Run(3, ctx => results[ctx.Rank] = ctx.AllReduce(full(96, ctx.Rank == 0 ? big : 1.0, dtype: dtype)));
        foreach (var r in results)
        {
            Assert.Equal(dtype, r.dtype);
            using var asFloat = r.to_type(ScalarType.Float32);
            var values = asFloat.data<float>().ToArray();
            Assert.True(values.All(v => v == big + 2), $"{dtype}: got {string.Join(", ", values.Distinct())}, expected {big + 2}");
        }
    }

    [Fact]
    public void AllReduce_of_a_non_contiguous_tensor_writes_through_to_it()
    {
        var results = new Tensor[3];
        LocalGroup.Run(3, ctx =>
        {
            var baseT = arange(12, dtype: ScalarType.Float32).reshape(3, 4) * (ctx.Rank + 1);
            var view = baseT.t();
            ctx.AllReduce(view);
            results[ctx.Rank] = baseT;
        });
        var expected = arange(12, dtype: ScalarType.Float32).reshape(3, 4) * 6;
        foreach (var r in results) Assert.True(r.eq(expected).all().item<bool>());
    }

    [Fact]
    public void Avg_of_an_integer_tensor_is_a_clear_error()
    {
        var errors = LocalGroup.TryRun(2, ctx => ctx.AllReduce(ones(3, dtype: ScalarType.Int64), ReduceOp.Avg));
        Assert.All(errors, e => Assert.Contains("floating-point", Assert.IsType<ArgumentException>(e).Message));
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(2, 1)]
    [InlineData(4, 2)]
    [InlineData(3, 0)]
    public void Broadcast_copies_the_src_ranks_tensor_into_every_ranks_tensor(int worldSize, int src)
    {
        var results = new Tensor[worldSize];
        LocalGroup.Run(worldSize, ctx =>
        {
            var t = full(3, 70_001, (double)ctx.Rank, dtype: ScalarType.Float64);
            ctx.Broadcast(t, src);
            results[ctx.Rank] = t;
        });
        foreach (var r in results) Assert.True(r.eq(src).all().item<bool>());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void AllGather_stacks_every_ranks_tensor_by_rank(int worldSize)
    {
        var results = new Tensor[worldSize];
        LocalGroup.Run(worldSize, ctx => results[ctx.Rank] = ctx.AllGather(full(2, 3, ctx.Rank * 10L, dtype: ScalarType.Int64)));
        foreach (var r in results)
        {
            Assert.Equal(new long[] { worldSize, 2, 3 }, r.shape);
            for (int k = 0; k < worldSize; k++) Assert.True(r[k].eq(k * 10L).all().item<bool>());
        }
    }

    [Fact]
    public void AllGather_of_empty_tensors_has_a_zero_sized_slot_per_rank()
    {
        var results = new Tensor[3];
        LocalGroup.Run(3, ctx => results[ctx.Rank] = ctx.AllGather(empty(0)));
        Assert.All(results, r => Assert.Equal(new long[] { 3, 0 }, r.shape));
    }

    public sealed record Payload(string Name, int[] Values);

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void BroadcastObject_and_AllGatherObject_give_every_rank_the_same_objects(int worldSize)
    {
        var broadcast = new Payload[worldSize];
        var gathered = new IReadOnlyList<string>[worldSize];
        int root = worldSize - 1;
        LocalGroup.Run(worldSize, ctx =>
        {
            broadcast[ctx.Rank] = ctx.BroadcastObject(new Payload($"from {ctx.Rank}", [ctx.Rank, 42]), root);
            gathered[ctx.Rank] = ctx.AllGatherObject($"rank-{ctx.Rank}");
            ctx.Barrier();
        });
        foreach (var b in broadcast)
        {
            Assert.Equal($"from {root}", b.Name);
            Assert.Equal(new[] { root, 42 }, b.Values);
        }
        var expected = Enumerable.Range(0, worldSize).Select(r => $"rank-{r}").ToArray();
        Assert.All(gathered, g => Assert.Equal(expected, g));
    }

    [Fact]
    public void Many_small_collectives_in_a_row_stay_in_step()
    {
        var sums = new double[3];
        LocalGroup.Run(3, ctx =>
        {
            double total = 0;
            for (int i = 0; i < 200; i++)
            {
                var t = tensor(new double[] { i + ctx.Rank });
                ctx.AllReduce(t);
                total += t.item<double>();
                if (i % 50 == 0) ctx.Barrier();
            }
            sums[ctx.Rank] = total;
        });
        double expected = Enumerable.Range(0, 200).Sum(i => 3.0 * i + 3);
        Assert.All(sums, s => Assert.Equal(expected, s));
    }

    [Fact]
    public void A_src_outside_the_world_is_a_clear_error()
    {
        using var ctx = TrainerContext.SingleProcess();
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ctx.Broadcast(ones(2), src: 1));
        Assert.Contains("[0, 1)", e.Message);
    }
}
