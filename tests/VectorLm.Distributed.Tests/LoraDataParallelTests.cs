using TorchSharp;
using TorchSharp.Modules;
using VectorLm.Hosting;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Distributed.Tests;

/// <summary>LoRA at world size 2: only the adapter's gradients are all-reduced, the frozen base never moves.</summary>
public class LoraDataParallelTests
{
    const int Steps = 3, Batch = 4;
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 16 };

    static Tensor Tokens(int step)
    {
        var g = new Generator((ulong)(200 + step));
        return randint(3, Config.VocabSize, [Batch, 12], generator: g);
    }

    static byte[] Bytes(Tensor t) => t.detach().contiguous().bytes.ToArray();

    // Every rank builds the same base and the same adapter: AddLora draws A from LoraConfig.Seed, not from the
    // process's RNG.
    static (LlamaModel Model, Dictionary<string, byte[]> Initial, List<(string, Tensor)> Final, GradientReducer? Reducer) Train(
        int loraSeed, Func<Tensor, Tensor> rankSlice, bool optimizerOverAllParameters)
    {
        var m = LlamaModel.Create(Config, seed: 9);
        m.AddLora(new LoraConfig { R = 4, Alpha = 8, Seed = loraSeed });
        var initial = m.named_parameters().ToDictionary(p => p.name, p => Bytes(p.parameter));
        // SGD: Adam's normalised first steps (B = 0 makes A's first gradients ~0) turn rounding into sign flips, so a
        // comparison with the single-rank run would test rounding, not the reduction.
        var parameters = optimizerOverAllParameters ? m.parameters() : m.parameters().Where(p => p.requires_grad);
        var opt = optim.SGD(parameters, 0.5, momentum: 0.9);
        for (int step = 0; step < Steps; step++)
        {
            // No per-step DisposeScope here: the reducer's buffers made inside one are freed with it on today's main
            // (issue 11, branch rel-lifetimes); this test is about which parameters are reduced.
            using var ids = rankSlice(Tokens(step));
            using var input = ids.narrow(1, 0, 11).contiguous();
            using var labels = ids.narrow(1, 1, 11).contiguous();
            opt.zero_grad();
            using var loss = m.Loss(input, labels);
            loss.backward();
            CollectiveInterceptors.OptimizerStep(opt, null);
        }
        var final = m.named_parameters().Select(p => (p.name, (Tensor)p.parameter.detach().clone())).ToList();
        var reducer = TrainerContextScope.Current is { WorldSize: > 1 } ? CollectiveInterceptors.ReducerOf(opt) : null;
        return (m, initial, final, reducer);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)] // an optimizer over every parameter, frozen ones included: the reducer still skips the base
    public void Two_ranks_reduce_only_the_adapter_and_match_one_rank_with_the_full_batch(bool optimizerOverAllParameters)
    {
        var single = Train(loraSeed: 0, t => t, optimizerOverAllParameters);
        var results = new (LlamaModel Model, Dictionary<string, byte[]> Initial, List<(string, Tensor)> Final, GradientReducer? Reducer)[2];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            results[ctx.Rank] = Train(loraSeed: 0, t => t.narrow(0, ctx.Rank * Batch / 2, Batch / 2), optimizerOverAllParameters);
        });

        foreach (var r in results)
        {
            var adapter = r.Model.named_parameters().Where(p => p.name.Contains(".lora_", StringComparison.Ordinal)).Select(p => p.parameter.Handle).ToHashSet();
            Assert.Equal(2 * 7 * 2, adapter.Count);
            Assert.Equal(adapter.Order(), r.Reducer!.ReducedParameters.Select(p => p.Handle).Order()); // buckets: adapter only
        }
        for (int i = 0; i < single.Final.Count; i++)
        {
            var (name, expected) = single.Final[i];
            var rank0 = results[0].Final[i].Item2;
            Assert.Equal(Bytes(rank0), Bytes(results[1].Final[i].Item2)); // bit-identical across ranks
            if (name.Contains(".lora_", StringComparison.Ordinal))
                Assert.True(rank0.allclose(expected, rtol: 0, atol: 1e-5), $"{name}: max difference {(rank0 - expected).abs().max().item<float>()}");
            else
                Assert.Equal(results[0].Initial[name], Bytes(rank0)); // the frozen base never moved
        }
        Assert.Equal(results[0].Initial, results[1].Initial);
        Assert.True(results[0].Final.Where(p => p.Item1.Contains(".lora_B.", StringComparison.Ordinal)).All(p => p.Item2.abs().max().item<float>() > 0),
            "every B should have trained away from zero");
        foreach (var r in results.Append(single)) r.Model.Dispose();
    }
}
