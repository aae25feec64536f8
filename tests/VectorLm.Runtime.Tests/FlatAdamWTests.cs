using TorchSharp.Modules;
using VectorLm.Models;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

public class FlatAdamWTests
{
    static readonly LlamaConfig Config = LlamaConfig.Tiny with { MaxPositionEmbeddings = 16 };

    // TorchSharp's own AdamW with the same two groups, the reference the flat update must reproduce.
    static AdamW Reference(LlamaModel m, double lr)
    {
        var named = m.named_parameters().ToList();
        return optim.AdamW(new[]
        {
            new AdamW.ParamGroup(named.Where(p => Optimizers.Decays(p.name, p.parameter)).Select(p => p.parameter), lr, 0.9, 0.95, 1e-8, 0.1),
            new AdamW.ParamGroup(named.Where(p => !Optimizers.Decays(p.name, p.parameter)).Select(p => p.parameter), lr, 0.9, 0.95, 1e-8, 0.0),
        }, lr);
    }

    // What Optimizers.AdamW builds for CUDA parameters, here forced on the CPU.
    static FlatAdamW FlatOnCpu(LlamaModel m, double lr, double weightDecay)
    {
        var named = m.named_parameters().ToList();
        return new FlatAdamW(new[]
        {
            new AdamW.ParamGroup(named.Where(p => Optimizers.Decays(p.name, p.parameter)).Select(p => p.parameter), lr, 0.9, 0.95, 1e-8, weightDecay),
            new AdamW.ParamGroup(named.Where(p => !Optimizers.Decays(p.name, p.parameter)).Select(p => p.parameter), lr, 0.9, 0.95, 1e-8, 0.0),
        }, lr, 0.9, 0.95, 1e-8, weightDecay, flattenCpuGroups: true);
    }

    [Fact]
    public void On_the_cpu_Optimizers_AdamW_keeps_the_per_parameter_step()
    {
        using var model = LlamaModel.Create(Config, seed: 2);
        using var opt = Optimizers.AdamW(model, 1e-3);
        Assert.False(Assert.IsType<FlatAdamW>(opt).IsFlat);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Flat_steps_match_TorchSharps_per_parameter_AdamW(bool moduleZeroGrad)
    {
        using var flatModel = LlamaModel.Create(Config, seed: 2);
        using var refModel = LlamaModel.Create(Config, seed: 2);
        using var flat = FlatOnCpu(flatModel, 1e-2, 0.1);
        Assert.True(flat.IsFlat);
        using var reference = Reference(refModel, 1e-2);
        var g = new Generator(9);
        for (int step = 0; step < 5; step++)
        {
            using var ids = randint(0, Config.VocabSize, [2, 16], dtype: ScalarType.Int64, generator: g);
            if (moduleZeroGrad) { flatModel.zero_grad(); refModel.zero_grad(); } // set to none: fresh gradients
            else { flat.zero_grad(); reference.zero_grad(); }
            flatModel.Loss(ids, ids).backward();
            refModel.Loss(ids, ids).backward();
            double expectedNorm = nn.utils.clip_grad_norm_(refModel.parameters(), 0.5);
            using var norm = flat.ClipGradNorm(0.5);
            Assert.True(Math.Abs(norm.item<float>() - expectedNorm) <= 1e-4 * expectedNorm, $"step {step}: norm {norm.item<float>()}, expected {expectedNorm}");
            Assert.True(expectedNorm > 0.5, "clipping must be active for the test to mean anything");
            flat.step();
            reference.step();
        }
        foreach (var ((name, a), (_, b)) in flatModel.named_parameters().Zip(refModel.named_parameters()))
        {
            using var diff = (a - b).abs().max();
            Assert.True(diff.item<float>() < 1e-5f, $"{name}: max difference {diff.item<float>()}");
        }
    }

    [Fact]
    public void Parameters_live_in_the_flat_buffer_so_in_place_writes_reach_the_optimizer()
    {
        using var model = LlamaModel.Create(Config, seed: 2);
        using var opt = FlatOnCpu(model, 1e-3, 0);
        Assert.True(opt.IsFlat);
        // Overwrite the weights in place (as a checkpoint load or a rank-0 broadcast does), then step.
        using (no_grad())
            foreach (var p in model.parameters()) p.fill_(0.25);
        using var ids = randint(0, Config.VocabSize, [1, 8], dtype: ScalarType.Int64);
        model.Loss(ids, ids).backward();
        opt.step();
        foreach (var p in model.parameters())
        {
            using var dist = (p - 0.25).abs().max();
            Assert.InRange(dist.item<float>(), 0f, 1.01e-3f); // one Adam step moves a weight by at most ~lr
        }
    }
}
