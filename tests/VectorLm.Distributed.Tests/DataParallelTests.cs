using TorchSharp;
using TorchSharp.Modules;
using VectorLm.Hosting;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

[Collection(TorchGlobalRng.Name)]
public class DataParallelTests
{
    const int Steps = 4, Batch = 8;

    static Sequential Model()
    {
        // Rank threads share torch's global generator: seed and draw under one lock.
        lock (TorchGlobalRng.Lock)
        {
            manual_seed(1234);
            return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3));
        }
    }

    static (Tensor X, Tensor Y) Data(int step)
    {
        var g = new Generator((ulong)(100 + step));
        return (randn(Batch, 6, generator: g), randn(Batch, 3, generator: g));
    }

    // One training run; `rankSlice` picks the rows this rank trains on; the step goes through the interceptor.
    static Tensor[] Train(Func<Tensor, Tensor> rankSlice, bool moduleZeroGrad, Func<Sequential, optim.Optimizer> makeOptimizer)
    {
        var model = Model();
        var opt = makeOptimizer(model);
        for (int step = 0; step < Steps; step++)
        {
            var (x, y) = Data(step);
            if (moduleZeroGrad) model.zero_grad(); // set_to_none: detaches views into the flat buffer
            else opt.zero_grad();                   // in place: backward accumulates into the flat buffer
            var loss = nn.functional.mse_loss(model.forward(rankSlice(x)), rankSlice(y));
            loss.backward();
            CollectiveInterceptors.OptimizerStep(opt, null);
        }
        return model.parameters().Select(p => p.detach().clone()).ToArray();
    }

    public static TheoryData<bool, string> Cases() => new()
    {
        { true, "sgd" }, { false, "sgd" }, { true, "adamw" }, { false, "adamw" },
    };

    static optim.Optimizer Make(string kind, Sequential m) => kind == "sgd"
        ? optim.SGD(m.parameters(), 0.1, momentum: 0.9)
        : optim.AdamW(m.parameters(), lr: 0.01);

    [Theory]
    [MemberData(nameof(Cases))]
    public void Two_ranks_with_half_batches_match_one_rank_with_the_full_batch(bool moduleZeroGrad, string optimizer)
    {
        var single = Train(t => t, moduleZeroGrad, m => Make(optimizer, m));

        var perRank = new Tensor[2][];
        var notified = new int[2];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            using var sub = ctx.OnWeightsChanged(() => notified[ctx.Rank]++);
            perRank[ctx.Rank] = Train(t => t.narrow(0, ctx.Rank * Batch / 2, Batch / 2), moduleZeroGrad, m => Make(optimizer, m));
        });

        Assert.Equal([Steps, Steps], notified);
        for (int i = 0; i < single.Length; i++)
        {
            Assert.True(perRank[0][i].allclose(single[i], rtol: 0, atol: 1e-5),
                $"parameter {i}: max difference {(perRank[0][i] - single[i]).abs().max().item<float>()}");
            Assert.Equal(perRank[0][i].bytes.ToArray(), perRank[1][i].bytes.ToArray()); // bit-identical across ranks
        }
    }

    // Clipping must see the rank-averaged gradients (as with DDP), so it is done after AverageGradients.
    static Tensor[] TrainClipped(Func<Tensor, Tensor> rankSlice)
    {
        var model = Model();
        var opt = optim.SGD(model.parameters(), 0.1);
        for (int step = 0; step < Steps; step++)
        {
            var (x, y) = Data(step);
            opt.zero_grad();
            nn.functional.mse_loss(model.forward(rankSlice(x)), rankSlice(y)).backward();
            CollectiveInterceptors.AverageGradients(opt);
            double norm = nn.utils.clip_grad_norm_(model.parameters(), 0.05);
            Assert.True(norm > 0.05, $"clipping must be active for this test to mean anything (norm {norm})");
            CollectiveInterceptors.OptimizerStep(opt, null);
        }
        return model.parameters().Select(p => p.detach().clone()).ToArray();
    }

    [Fact]
    public void Clipping_after_AverageGradients_matches_one_rank_and_the_step_does_not_average_again()
    {
        var single = TrainClipped(t => t);
        var perRank = new Tensor[2][];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            perRank[ctx.Rank] = TrainClipped(t => t.narrow(0, ctx.Rank * Batch / 2, Batch / 2));
        });
        for (int i = 0; i < single.Length; i++)
        {
            Assert.True(perRank[0][i].allclose(single[i], rtol: 0, atol: 1e-5),
                $"parameter {i}: max difference {(perRank[0][i] - single[i]).abs().max().item<float>()}");
            Assert.Equal(perRank[0][i].bytes.ToArray(), perRank[1][i].bytes.ToArray());
        }
    }

    [Fact]
    public void An_optimizer_the_SDK_did_not_build_starts_from_rank_0s_weights_at_its_first_step()
    {
        var initial = new Tensor[2][];
        var finals = new Tensor[2][];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            Sequential model;
            lock (TorchGlobalRng.Lock)
            {
                manual_seed(10 + ctx.Rank); // a different initialisation per rank
                model = nn.Sequential(nn.Linear(4, 3));
            }
            initial[ctx.Rank] = model.parameters().Select(p => p.detach().clone()).ToArray();
            var opt = optim.SGD(model.parameters(), 0.1);
            model.forward(ones(2, 4)).sum().backward(); // gradient 2 everywhere, whatever the weights
            CollectiveInterceptors.OptimizerStep(opt, null);
            finals[ctx.Rank] = model.parameters().Select(p => p.detach().clone()).ToArray();
        });
        Assert.False(initial[0][0].allclose(initial[1][0]), "the ranks must start different for this test to mean anything");
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < finals[r].Length; i++)
            {
                using var expected = initial[0][i] - 0.1f * 2; // rank 0's initial weights, one SGD step
                Assert.True(finals[r][i].allclose(expected, rtol: 0, atol: 1e-6), $"rank {r} parameter {i} does not continue from rank 0's weights");
            }
    }

    [Fact]
    public void Two_ranks_under_bf16_mixed_end_with_identical_f32_parameters()
    {
        var perRank = new Tensor[2][];
        LocalGroup.Run(2, ctx =>
        {
            ctx.Precision = VectorLm.Training.Precision.Bf16Mixed;
            using var scope = TrainerContextScope.Enter(ctx);
            VectorLm.Models.LlamaModel model;
            lock (TorchGlobalRng.Lock) model = VectorLm.Models.LlamaModel.Create(VectorLm.Models.LlamaConfig.Tiny with { MaxPositionEmbeddings = 16 }, seed: 3);
            using (model)
            {
                var opt = VectorLm.Training.Optimizers.AdamW(model, 1e-3);
                for (int step = 0; step < 3; step++)
                {
                    // Different data per rank: only the gradient average makes the parameters agree.
                    var g = new Generator((ulong)(10 * step + ctx.Rank));
                    using var ids = randint(0, 259, [2, 16], dtype: ScalarType.Int64, generator: g);
                    opt.zero_grad();
                    using var logits = model.forward(ids);
                    Assert.Equal(ScalarType.BFloat16, logits.dtype); // autocast is on, on each rank's thread
                    model.Loss(ids, ids).backward();
                    CollectiveInterceptors.OptimizerStep(opt, null);
                }
                perRank[ctx.Rank] = model.parameters().Select(p => p.detach().clone()).ToArray();
            }
        });
        Assert.All(perRank[0], p => Assert.Equal(ScalarType.Float32, p.dtype));
        for (int i = 0; i < perRank[0].Length; i++)
            Assert.Equal(perRank[0][i].bytes.ToArray(), perRank[1][i].bytes.ToArray());
    }

    [Fact]
    public void A_step_with_a_closure_consumes_AverageGradients_so_the_next_plain_step_averages_again()
    {
        var perRank = new Tensor[2][];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            var model = Model();
            var opt = optim.SGD(model.parameters(), 0.1);
            Tensor Loss(int step)
            {
                var (x, y) = Data(step);
                Tensor Rows(Tensor t) => t.narrow(0, ctx.Rank * Batch / 2, Batch / 2);
                return nn.functional.mse_loss(model.forward(Rows(x)), Rows(y));
            }
            opt.zero_grad();
            Loss(0).backward();
            CollectiveInterceptors.AverageGradients(opt);
            CollectiveInterceptors.OptimizerStep(opt, () => { opt.zero_grad(); var l = Loss(0); l.backward(); return l; });
            // Each rank sees other rows here: only an averaging step keeps the ranks' parameters identical.
            opt.zero_grad();
            Loss(1).backward();
            CollectiveInterceptors.OptimizerStep(opt, null);
            perRank[ctx.Rank] = model.parameters().Select(p => p.detach().clone()).ToArray();
        });
        for (int i = 0; i < perRank[0].Length; i++)
            Assert.Equal(perRank[0][i].bytes.ToArray(), perRank[1][i].bytes.ToArray());
    }

    [Fact]
    public void A_parameter_without_gradient_on_every_rank_keeps_a_null_gradient()
    {
        var grads = new Tensor?[2][];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            var used = nn.Linear(2, 1);
            var unused = nn.Linear(2, 1);
            var opt = optim.SGD(used.parameters().Concat(unused.parameters()), 0.1);
            used.forward(ones(1, 2)).sum().backward();
            CollectiveInterceptors.OptimizerStep(opt, null);
            grads[ctx.Rank] = [used.weight!.grad, unused.weight!.grad];
        });
        Assert.All(grads, g => { Assert.NotNull(g[0]); Assert.Null(g[1]); });
    }
}

/// <summary>Tests that seed torch's process-wide generator run one at a time and draw under this lock.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalRng
{
    public const string Name = "torch global RNG";
    public static readonly object Lock = new();
}
