using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Models;

/// <summary>
/// A module's parameters by name, as <c>named_parameters</c> gives them, kept between calls: what the sampling engines
/// read at every sync. TorchSharp's <c>named_parameters</c> builds every name anew through one iterator per level of
/// nesting and the dictionary with it; <see cref="Current"/> instead walks the module tree without building names or
/// a dictionary and compares each level's parameter and child names and objects, in order, with the last build. Only
/// when one differs (a module swapped by an adapter, parameters replaced by <c>Module.to</c>) is the dictionary built
/// again. A parameter re-pointed in place (<c>set_</c>, as FlatAdamW does) is the same object: the engines check where
/// each one lives themselves. For a 24-layer Llama on a loaded 2-core CPU: 0.25 against 0.75 ms on early (unoptimised)
/// calls, 0.11-0.12 against 0.11-0.20 ms once the JIT has optimised both; the walk itself is bound by TorchSharp's
/// per-module iterators.
/// </summary>
internal sealed class ParameterIndex(nn.Module root, Func<string, bool> include)
{
    // The walk's sequence: per module, its own (name, parameter) pairs, then per child (name, module) and the child's walk.
    sealed record Snapshot((string Name, object Item)[] Order, IReadOnlyDictionary<string, Tensor> ByName);

    Snapshot? _last;   // replaced whole, never changed: callers on other threads see one build or the other

    /// <summary>The parameters whose names <c>include</c> accepts; the same dictionary object as long as the tree is unchanged.</summary>
    public IReadOnlyDictionary<string, Tensor> Current()
    {
        var last = _last;
        if (last is not null)
        {
            int at = 0;
            if (Matches(root, last.Order, ref at) && at == last.Order.Length) return last.ByName;
        }
        var order = new List<(string, object)>();
        Collect(root, order);
        var byName = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, p) in root.named_parameters())
            if (include(name)) byName[name] = p;
        _last = new Snapshot(order.ToArray(), byName);
        return byName;
    }

    static bool Matches(nn.Module m, (string Name, object Item)[] order, ref int at)
    {
        foreach (var (name, p) in m.named_parameters(recurse: false))
            if (!Same(order, at++, name, p)) return false;
        foreach (var (name, child) in m.named_children())
            if (!Same(order, at++, name, child) || !Matches(child, order, ref at)) return false;
        return true;
    }

    static bool Same((string Name, object Item)[] order, int at, string name, object item) =>
        at < order.Length && ReferenceEquals(order[at].Item, item) && string.Equals(order[at].Name, name, StringComparison.Ordinal);

    static void Collect(nn.Module m, List<(string, object)> order)
    {
        foreach (var (name, p) in m.named_parameters(recurse: false)) order.Add((name, p));
        foreach (var (name, child) in m.named_children())
        {
            order.Add((name, child));
            Collect(child, order);
        }
    }
}
