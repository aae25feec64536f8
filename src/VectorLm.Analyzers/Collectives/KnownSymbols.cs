using System;
using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using VectorLm.Analyzers.Shared;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Recognises the VectorLm attributes and the few framework members the deadlock analysis cares about. Attributes are
/// matched by namespace and name (not by symbol identity), so the analysis works on any compilation that references
/// some build of VectorLm, or declares the attributes itself.
/// </summary>
internal sealed class KnownSymbols
{
    [Flags]
    enum Marks
    {
        None = 0,
        Collective = 1,
        RankDependent = 2,
        RankUniform = 4,
        NoReturn = 8,
        OptimizerStep = 16,
    }

    /// <summary>Environment variables whose value is the process's rank (torchrun, SLURM, Open MPI, PMI).</summary>
    static readonly ImmutableHashSet<string> RankVariables = ImmutableHashSet.Create(
        StringComparer.Ordinal, "RANK", "LOCAL_RANK", "SLURM_PROCID", "SLURM_LOCALID", "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK");

    readonly ConcurrentDictionary<ISymbol, Marks> _marks = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<INamedTypeSymbol, bool> _trainers = new(SymbolEqualityComparer.Default);

    public bool IsCollective(IMethodSymbol method) => (Get(method) & Marks.Collective) != 0;

    /// <summary><c>step()</c> on a TorchSharp optimizer; a collective only inside a [DistributedTrainer] class.</summary>
    public bool IsOptimizerStep(IMethodSymbol method) => (Get(method) & Marks.OptimizerStep) != 0;

    public bool IsRankDependent(ISymbol member) => (Get(member) & Marks.RankDependent) != 0;

    public bool IsRankUniform(ISymbol member) => (Get(member) & Marks.RankUniform) != 0;

    /// <summary><c>Environment.Exit</c>, <c>Environment.FailFast</c> and <c>[DoesNotReturn]</c> methods.</summary>
    public bool IsNoReturn(IMethodSymbol method) => (Get(method) & Marks.NoReturn) != 0;

    /// <summary><c>Environment.GetEnvironmentVariable("RANK")</c> and the other rank variables.</summary>
    public static bool IsRankVariableRead(IInvocationOperation invocation) =>
        invocation.TargetMethod is { Name: "GetEnvironmentVariable", ContainingType: { Name: "Environment" } type }
        && IsNamespace(type.ContainingNamespace, "System")
        && invocation.Arguments.Length > 0
        && invocation.Arguments[0].Value.ConstantValue is { HasValue: true, Value: string name }
        && RankVariables.Contains(name);

    /// <summary>True for a [DistributedTrainer] class or a type nested in one.</summary>
    public bool IsTrainer(INamedTypeSymbol? type)
    {
        if (type is null) return false;
        return _trainers.GetOrAdd(type, t =>
        {
            for (var current = t; current is not null; current = current.ContainingType)
                if (HasVectorLmAttribute(current, nameof(DistributedTrainerAttribute))) return true;
            return false;
        });
    }

    Marks Get(ISymbol symbol) => _marks.GetOrAdd(symbol, Compute);

    static Marks Compute(ISymbol symbol)
    {
        var marks = Marks.None;
        // Attributes are Inherited = true, but Roslyn only reports those declared on the symbol itself: look at the
        // members it overrides or implements too.
        foreach (var member in SelfAndRelated(symbol))
        {
            marks |= Own(member);
            if (member is IMethodSymbol method)
                foreach (var attribute in method.GetReturnTypeAttributes())
                    if (IsVectorLmAttribute(attribute, nameof(RankUniformAttribute))) marks |= Marks.RankUniform;
        }
        if (symbol is IMethodSymbol m)
        {
            if (m.Name is "Exit" or "FailFast" && m.ContainingType is { Name: "Environment" } env
                && IsNamespace(env.ContainingNamespace, "System"))
                marks |= Marks.NoReturn;
            if (m.Name == "step" && DerivesFromTorchOptimizer(m.ContainingType)) marks |= Marks.OptimizerStep;
        }
        return marks;
    }

    static Marks Own(ISymbol symbol)
    {
        var marks = Marks.None;
        foreach (var attribute in symbol.GetAttributes())
        {
            var type = attribute.AttributeClass;
            if (type is null) continue;
            if (IsVectorLmAttribute(attribute, nameof(CollectiveAttribute))) marks |= Marks.Collective;
            else if (IsVectorLmAttribute(attribute, nameof(RankDependentAttribute))) marks |= Marks.RankDependent;
            else if (IsVectorLmAttribute(attribute, nameof(RankUniformAttribute))) marks |= Marks.RankUniform;
            else if (type.Name == "DoesNotReturnAttribute"
                     && IsNamespace(type.ContainingNamespace, "System.Diagnostics.CodeAnalysis"))
                marks |= Marks.NoReturn;
        }
        return marks;
    }

    static System.Collections.Generic.IEnumerable<ISymbol> SelfAndRelated(ISymbol symbol)
    {
        yield return symbol;
        if (!SymbolEqualityComparer.Default.Equals(symbol.OriginalDefinition, symbol)) yield return symbol.OriginalDefinition;
        for (var overridden = Overridden(symbol); overridden is not null; overridden = Overridden(overridden))
            yield return overridden;
        if (symbol.ContainingType is { } containing && symbol.Kind is SymbolKind.Method or SymbolKind.Property)
        {
            foreach (var itf in containing.AllInterfaces)
                foreach (var candidate in itf.GetMembers(symbol.Name))
                {
                    var implementation = containing.FindImplementationForInterfaceMember(candidate);
                    if (SymbolEqualityComparer.Default.Equals(implementation, symbol)
                        || SymbolEqualityComparer.Default.Equals(implementation, symbol.OriginalDefinition))
                        yield return candidate;
                }
        }
        if (symbol is IMethodSymbol { AssociatedSymbol: IPropertySymbol property })
            yield return property;
    }

    static ISymbol? Overridden(ISymbol symbol) => symbol switch
    {
        IMethodSymbol m => m.OverriddenMethod,
        IPropertySymbol p => p.OverriddenProperty,
        _ => null,
    };

    static bool DerivesFromTorchOptimizer(INamedTypeSymbol? type)
    {
        for (var current = type; current is not null; current = current.BaseType)
            if (current is { Name: "Optimizer", ContainingType: { Name: "optim", ContainingType: { Name: "torch" } torch } }
                && IsNamespace(torch.ContainingNamespace, "TorchSharp"))
                return true;
        return false;
    }

    static bool HasVectorLmAttribute(ISymbol symbol, string name)
    {
        foreach (var attribute in symbol.GetAttributes())
            if (IsVectorLmAttribute(attribute, name)) return true;
        return false;
    }

    static bool IsVectorLmAttribute(AttributeData attribute, string name) =>
        attribute.AttributeClass is { } type && type.Name == name && IsNamespace(type.ContainingNamespace, "VectorLm");

    /// <summary>Compares a namespace with a dotted name without allocating its display string.</summary>
    static bool IsNamespace(INamespaceSymbol? ns, string dotted)
    {
        int end = dotted.Length;
        while (ns is { IsGlobalNamespace: false })
        {
            int start = dotted.LastIndexOf('.', end - 1) + 1;
            if (end - start != ns.Name.Length || string.CompareOrdinal(dotted, start, ns.Name, 0, ns.Name.Length) != 0)
                return false;
            end = start - 1;
            ns = ns.ContainingNamespace;
            if (end < 0) return ns is null || ns.IsGlobalNamespace;
        }
        return false;
    }
}
