using TorchSharp;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

/// <summary>The cached parameter dictionary the sampling engines read at every sync: reused while the module tree is unchanged, rebuilt as soon as it changes.</summary>
public class ParameterIndexTests
{
    static void AssertMatchesNamedParameters(LlamaModel m, IReadOnlyDictionary<string, Tensor> byName)
    {
        var expected = m.named_parameters().Where(p => !LlamaModel.IsAdapterParameter(p.name)).ToList();
        Assert.Equal(expected.Select(p => p.name).Order(), byName.Keys.Order());
        foreach (var (name, p) in expected) Assert.Same(p, byName[name]);
    }

    [Fact]
    public void The_dictionary_is_reused_while_the_tree_is_unchanged_and_rebuilt_when_modules_or_parameters_are_replaced()
    {
        using var m = LlamaModel.Create(LlamaConfig.Tiny with { TieWordEmbeddings = false }, seed: 1);
        var first = m.BaseParameterDictionary();
        AssertMatchesNamedParameters(m, first);
        Assert.Same(first, m.BaseParameterDictionary());

        // Re-pointed in place (as FlatAdamW does): the same parameter objects, the same dictionary.
        using (no_grad())
            foreach (var p in m.parameters())
            {
                using var copy = p.detach().clone();
                p.set_(copy);
            }
        Assert.Same(first, m.BaseParameterDictionary());

        // An adapter swaps the projections for LoRA modules: rebuilt, still without the adapter's own parameters.
        m.AddLora(new LoraConfig { R = 2, Alpha = 4, TargetModules = ["q_proj"] });
        var adapted = m.BaseParameterDictionary();
        Assert.NotSame(first, adapted);
        AssertMatchesNamedParameters(m, adapted);
        Assert.Same(adapted, m.BaseParameterDictionary());

        // Merged back: plain linear layers again.
        m.MergeAdapter();
        var merged = m.BaseParameterDictionary();
        Assert.NotSame(adapted, merged);
        AssertMatchesNamedParameters(m, merged);

        // Module.to(dtype) replaces every parameter object.
        m.to(ScalarType.Float64);
        var converted = m.BaseParameterDictionary();
        Assert.NotSame(merged, converted);
        AssertMatchesNamedParameters(m, converted);
        Assert.All(converted.Values, p => Assert.Equal(ScalarType.Float64, p.dtype));
    }
}
