using System.Collections.Generic;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// A member body (method, accessor, constructor, initializer) with every lambda and local function inside it. Locals
/// that a nested function reads or writes are "captured": their taint is kept flow-insensitively for the whole unit,
/// since the nested function may run at any point.
/// </summary>
internal sealed class BodyUnit
{
    public BodyUnit(ISymbol member, ControlFlowGraph cfg, KnownSymbols known)
    {
        Member = member;
        Root = new FlowGraph(cfg, member as IMethodSymbol, known);
        Graphs.Add(Root);
        Collect(Root, known);
        foreach (var graph in Graphs)
        {
            graph.Unit = this;
            foreach (var block in graph.Operations)
                foreach (var op in block)
                    foreach (var node in op.DescendantsAndSelf())
                        if (node is ISimpleAssignmentOperation { Target: ILocalReferenceOperation target } assignment
                            && CollectiveModel.FunctionOf(assignment.Value) is { } function)
                        {
                            if (!DelegateTargets.TryGetValue(target.Local, out var list)) DelegateTargets[target.Local] = list = new List<IMethodSymbol>();
                            list.Add(function);
                        }
        }
        foreach (var graph in Graphs)
        {
            if (graph == Root) continue;
            foreach (var block in graph.Operations)
                foreach (var op in block)
                    foreach (var node in op.DescendantsAndSelf())
                    {
                        ISymbol? symbol = node switch
                        {
                            ILocalReferenceOperation l => l.Local,
                            IParameterReferenceOperation p => p.Parameter,
                            _ => null,
                        };
                        if (symbol is not null && !SymbolEqualityComparer.Default.Equals(symbol.ContainingSymbol, graph.Function))
                            Captured.Add(symbol);
                    }
        }
    }

    public ISymbol Member { get; }

    public FlowGraph Root { get; }

    /// <summary>The root graph first, then nested functions in discovery order.</summary>
    public List<FlowGraph> Graphs { get; } = new();

    /// <summary>Graphs of local functions and lambdas by their symbol.</summary>
    public Dictionary<IMethodSymbol, FlowGraph> Functions { get; } = new(SymbolEqualityComparer.Default);

    public HashSet<ISymbol> Captured { get; } = new(SymbolEqualityComparer.Default);

    /// <summary>Lambdas and local functions assigned to each delegate-typed local, wherever in the unit.</summary>
    public Dictionary<ILocalSymbol, List<IMethodSymbol>> DelegateTargets { get; } = new(SymbolEqualityComparer.Default);

    void Collect(FlowGraph graph, KnownSymbols known)
    {
        foreach (var localFunction in graph.Cfg.LocalFunctions)
        {
            var nested = new FlowGraph(graph.Cfg.GetLocalFunctionControlFlowGraph(localFunction), localFunction, known);
            Add(localFunction, nested, known);
        }
        foreach (var block in graph.Operations)
            foreach (var op in block)
                foreach (var node in op.DescendantsAndSelf())
                    if (node is IFlowAnonymousFunctionOperation lambda)
                        Add(lambda.Symbol, new FlowGraph(graph.Cfg.GetAnonymousFunctionControlFlowGraph(lambda), lambda.Symbol, known), known);
    }

    void Add(IMethodSymbol symbol, FlowGraph graph, KnownSymbols known)
    {
        if (Functions.ContainsKey(symbol)) return;
        Functions.Add(symbol, graph);
        Graphs.Add(graph);
        Collect(graph, known);
    }
}
