using System.Reflection;
using System.Runtime.Loader;
using Microsoft.CodeAnalysis;
using VectorLm.Distributed;
using VectorLm.Distributed.Tests;
using VectorLm.Hosting;
using static TorchSharp.torch;

namespace VectorLm.Generators.Tests;

/// <summary>
/// The HelperSteps case compiled with its generated interceptors and run on two ranks (threads of this process, each
/// with its own tcp process group): optimizer steps and gradient clips in a static helper class, an extension method
/// and a local function of an ordinary class are intercepted, so the ranks end with identical parameters, equal to one
/// process on the whole batch. A step behind a delegate is not intercepted: the run-time parameter check catches it.
/// </summary>
public sealed class InterceptedEverywhereTests
{
    const int Steps = 3;

    // A step hidden behind a method group for two steps, then two direct (intercepted) steps.
    const string DelegateLab = """
        using System;
        using System.Linq;
        using TorchSharp;
        using static TorchSharp.torch;

        namespace Samples.Helpers;

        public static class DelegateLab
        {
            public static float[] Run(int rank, int worldSize)
            {
                using var model = nn.Linear(4, 2);
                using (no_grad()) model.weight!.copy_(arange(8, dtype: float32).reshape(2, 4) / 10);
                var optimizer = optim.SGD(model.parameters(), 0.05, momentum: 0.9);
                Func<Func<Tensor>, Tensor> hiddenStep = optimizer.step;
                for (var step = 0; step < 4; step++)
                {
                    var g = new Generator((ulong)(7 + step));
                    var x = randn(8, 4, generator: g);
                    var rows = 8 / worldSize;
                    optimizer.zero_grad();
                    model.forward(x.narrow(0, rank * rows, rows)).pow(2).mean().backward();
                    if (step < 2) hiddenStep(null!);
                    else optimizer.step();
                }
                return model.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();
            }
        }
        """;

    static readonly Lazy<Assembly> s_generated = new(() => Load("HelperStepsGenerated", withGenerator: true));
    static readonly Lazy<Assembly> s_plain = new(() => Load("HelperStepsPlain", withGenerator: false));

    static Assembly Load(string name, bool withGenerator)
    {
        var (sources, _) = GeneratorHarness.LoadCase("HelperSteps");
        sources.Add(("DelegateLab.cs", DelegateLab));
        Compilation compilation = GeneratorHarness.Compile(sources, OutputKind.DynamicallyLinkedLibrary, name);
        if (withGenerator) (compilation, _) = GeneratorHarness.Generate(compilation);
        using var pe = new MemoryStream();
        var emit = compilation.Emit(pe);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        pe.Position = 0;
        return new AssemblyLoadContext(name).LoadFromStream(pe);
    }

    static (float[] Parameters, double[] Norms) RunLab(Assembly assembly, string mode, int rank, int worldSize)
    {
        var run = assembly.GetType("Samples.Helpers.Lab")!.GetMethod("Run")!;
        var result = ((float[], double[]))run.Invoke(null, [mode, rank, worldSize, Steps])!;
        return result;
    }

    static float[] RunDelegateLab(int rank, int worldSize)
    {
        var run = s_generated.Value.GetType("Samples.Helpers.DelegateLab")!.GetMethod("Run")!;
        try
        {
            return (float[])run.Invoke(null, [rank, worldSize])!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw e.InnerException;
        }
    }

    [Theory]
    [InlineData("helper")]
    [InlineData("extension")]
    [InlineData("local")]
    public void Steps_outside_the_trainer_class_keep_two_ranks_identical_and_equal_to_one_process(string mode)
    {
        var single = RunLab(s_generated.Value, mode, rank: 0, worldSize: 1);
        var perRank = new (float[] Parameters, double[] Norms)[2];
        LocalGroup.Run(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            perRank[ctx.Rank] = RunLab(s_generated.Value, mode, ctx.Rank, ctx.WorldSize);
        });

        Assert.Equal(perRank[0].Parameters, perRank[1].Parameters); // bit-identical across ranks
        for (var i = 0; i < single.Parameters.Length; i++)
            Assert.True(Math.Abs(perRank[0].Parameters[i] - single.Parameters[i]) < 1e-5,
                $"parameter {i}: two ranks {perRank[0].Parameters[i]}, one process {single.Parameters[i]}");
        if (mode == "extension")
        {
            // The clip triggered on every step and saw the averaged gradients: the same norm as one process.
            Assert.Equal(Steps, single.Norms.Length);
            Assert.All(single.Norms, n => Assert.True(n > 0.5, $"the clip must trigger for this test to mean anything (norm {n})"));
            Assert.Equal(perRank[0].Norms, perRank[1].Norms);
            for (var i = 0; i < Steps; i++) Assert.Equal(single.Norms[i], perRank[0].Norms[i], 5);
        }
    }

    [Theory]
    [InlineData("helper")]
    [InlineData("extension")]
    public void Outside_a_distributed_trainer_the_interceptors_are_the_plain_calls(string mode)
    {
        var intercepted = RunLab(s_generated.Value, mode, rank: 0, worldSize: 1);
        var plain = RunLab(s_plain.Value, mode, rank: 0, worldSize: 1);
        Assert.Equal(plain.Parameters, intercepted.Parameters);
        Assert.Equal(plain.Norms, intercepted.Norms);
    }

    [Fact]
    public void Interceptors_cover_the_helper_class_the_extension_method_and_the_local_function()
    {
        var (sources, _) = GeneratorHarness.LoadCase("HelperSteps");
        var (_, run) = GeneratorHarness.Generate(GeneratorHarness.Compile(sources));
        var text = run.GeneratedTrees.Single(t => t.FilePath.EndsWith(TrainerGenerator.Interceptors.HintName, StringComparison.Ordinal)).ToString();
        Assert.Contains("\"BackwardAndStep\", \"Lab.cs\"", text, StringComparison.Ordinal);
        Assert.Contains("CollectiveInterceptors.ClipGradNorm(tensors, max_norm, norm_type, \"ClipAndStep\"", text, StringComparison.Ordinal);
        Assert.Contains("CollectiveInterceptors.ClipGradValue(tensors, clip_value, \"ClipAndStep\"", text, StringComparison.Ordinal);
        Assert.Contains("CollectiveInterceptors.OptimizerStep(optimizer, closure, \"Run\", \"Lab.cs\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_step_behind_a_delegate_fails_the_parameter_check_with_the_likely_cause()
    {
        var errors = LocalGroup.TryRun(2, ctx =>
        {
            using var scope = TrainerContextScope.Enter(ctx);
            RunDelegateLab(ctx.Rank, ctx.WorldSize);
        });
        Assert.All(errors, e =>
        {
            var error = Assert.IsType<DistributedException>(e);
            Assert.Contains("Parameters differ across ranks", error.Message, StringComparison.Ordinal);
            Assert.Contains("not intercepted", error.Message, StringComparison.Ordinal);
            Assert.Contains("delegate", error.Message, StringComparison.Ordinal);
            Assert.Contains(CollectiveInterceptors.ParameterCheckVariable + "=0", error.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public void With_the_check_off_the_same_run_completes_with_ranks_that_disagree()
    {
        // Proves the check is what stopped the run above, and that the divergence it reports is real.
        var previous = Environment.GetEnvironmentVariable(CollectiveInterceptors.ParameterCheckVariable);
        Environment.SetEnvironmentVariable(CollectiveInterceptors.ParameterCheckVariable, "0");
        try
        {
            var perRank = new float[2][];
            LocalGroup.Run(2, ctx =>
            {
                using var scope = TrainerContextScope.Enter(ctx);
                perRank[ctx.Rank] = RunDelegateLab(ctx.Rank, ctx.WorldSize);
            });
            Assert.NotEqual(perRank[0], perRank[1]);
        }
        finally
        {
            Environment.SetEnvironmentVariable(CollectiveInterceptors.ParameterCheckVariable, previous);
        }
    }
}
