using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Taint analysis of every body of one type together, iterated to a fixed point, since fields are shared class-wide
/// and methods of the type call each other; then the deadlock checks over each body. Other types are analysed on
/// demand through <see cref="CollectiveModel.GetTypeAnalysis"/>.
/// </summary>
internal sealed class TypeAnalysis
{
    readonly Dictionary<ISymbol, ulong> _fields = new(SymbolEqualityComparer.Default);
    readonly Dictionary<IMethodSymbol, TaintSummary> _summaries = new(SymbolEqualityComparer.Default);
    readonly Dictionary<FlowGraph, GraphTaint> _taints = new();
    readonly List<UnitState> _units = new();
    readonly HashSet<BodyUnit> _included = new();
    int _fieldVersion;

    public TypeAnalysis(CollectiveModel model, INamedTypeSymbol type)
    {
        Model = model;
        Type = type;
    }

    public CollectiveModel Model { get; }

    public INamedTypeSymbol Type { get; }

    public List<Diagnostic> Diagnostics { get; } = new();

    public void Run(CancellationToken cancellationToken)
    {
        foreach (var member in Type.GetMembers())
        {
            if (member.DeclaringSyntaxReferences.Length == 0) continue;
            if (member is not (IMethodSymbol or IFieldSymbol or IPropertySymbol)) continue;
            if (OnDemand(member, cancellationToken)) continue;
            var unit = Model.GetUnit(member, cancellationToken);
            if (unit is not null) Include(unit);
        }
        if (_units.Count == 0) return;

        _cancellationToken = cancellationToken;
        for (int round = 0; ; round++)
        {
            if (round == Model.Limits.TypeRounds) { Model.Stats.Add(ref Model.Stats.TaintRoundLimits); break; }
            int before = Version();
            for (int u = 0; u < _units.Count; u++) RunPasses(_units[u]);
            if (Version() == before) break;
        }
        _passesStarted = false;

        var detector = new DeadlockDetector(this, cancellationToken);
        for (int round = 0; round < Model.Limits.CheckRounds; round++)
        {
            int before = Version();
            Diagnostics.Clear();
            for (int u = 0; u < _units.Count; u++)
            {
                var unit = _units[u];
                // The body of a collective implements the protocol; its rank-dependent paths are by design.
                if (unit.Unit.Member is IMethodSymbol member && Model.Known.IsCollective(member)) continue;
                foreach (var graph in unit.Unit.Graphs)
                    if (_taints.TryGetValue(graph, out var taint))
                        Diagnostics.AddRange(detector.Check(graph, taint));
            }
            if (Version() == before) break;
        }
    }

    /// <summary>
    /// A private method that can neither reach a collective nor write class-wide state (from syntax) matters only
    /// through its summary; its body is bound when a pass of this type asks for that summary, not before (a
    /// private member of a type without nested types is only called from this analysis).
    /// </summary>
    bool OnDemand(ISymbol member, CancellationToken cancellationToken)
    {
        if (member is not IMethodSymbol { DeclaredAccessibility: Accessibility.Private, MethodKind: MethodKind.Ordinary or MethodKind.PropertyGet or MethodKind.PropertySet } method
            || !Type.GetTypeMembers().IsEmpty)
            return false;
        var names = Model.Names(cancellationToken);
        return !names.MayReach(method, cancellationToken) && !names.MayCallSource(method) && !StateWrites.MayWrite(method, Model.GlobalUsingStatic(cancellationToken), cancellationToken);
    }

    void Include(BodyUnit unit)
    {
        if (!_included.Add(unit)) return;
        var state = new UnitState(unit);
        _units.Add(state);
        // Asked for by a pass under way: run it now, so that the asking pass reads its summary (not an empty one that
        // would make it run again next round).
        if (_passesStarted) RunPasses(state);
    }

    // Rerun a graph only while something it read (a summary, a field, a captured local) has changed since.
    readonly Dictionary<FlowGraph, (TaintPass Pass, long Signature)> _passes = new();
    CancellationToken _cancellationToken;
    bool _passesStarted;

    void RunPasses(UnitState unit)
    {
        _passesStarted = true;
        for (int g = unit.Unit.Graphs.Count - 1; g >= 0; g--)
        {
            var graph = unit.Unit.Graphs[g];
            if (_passes.TryGetValue(graph, out var last) && Signature(last.Pass, unit) == last.Signature) continue;
            var pass = new TaintPass(this, unit, graph, _cancellationToken);
            pass.Run();
            _taints[graph] = pass.Result;
            _passes[graph] = (pass, Signature(pass, unit));
        }
    }

    long Signature(TaintPass pass, UnitState unit)
    {
        long signature = unit.Version;
        foreach (var summary in pass.ReadSummaries) signature = signature * 31 + summary.Version;
        foreach (var field in pass.ReadFields)
            signature = signature * 31 + (long)FieldTaint(field, CancellationToken.None);
        return signature;
    }

    int Version()
    {
        int version = _fieldVersion;
        foreach (var summary in _summaries.Values) version += summary.Version;
        foreach (var unit in _units) version += unit.Version;
        return version;
    }

    /// <summary>The summary this analysis builds for one of its own functions (created empty on first use).</summary>
    public TaintSummary SummaryFor(IMethodSymbol function)
    {
        function = function.OriginalDefinition;
        if (!_summaries.TryGetValue(function, out var summary))
        {
            summary = new TaintSummary();
            _summaries.Add(function, summary);
        }
        return summary;
    }

    /// <summary>What a call to <paramref name="method"/> does with taint, or null for code without a body here.</summary>
    public TaintSummary? TaintSummaryOf(IMethodSymbol method, CancellationToken cancellationToken)
    {
        method = method.OriginalDefinition;
        if (method.ReducedFrom is { } reduced) method = reduced;
        if (method.MethodKind is MethodKind.LocalFunction or MethodKind.AnonymousFunction) return SummaryFor(method);
        if (method.DeclaringSyntaxReferences.Length == 0 || method.IsAbstract || method.IsExtern) return null;
        if (method.ContainingType is not { } type) return null;
        if (SymbolEqualityComparer.Default.Equals(type.OriginalDefinition, Type))
        {
            var unit = Model.GetUnit(method, cancellationToken);
            if (unit is null) return null;
            // A member left out until now (see OnDemand) joins the analysis; it runs later in this round.
            Include(unit);
            return SummaryFor(method);
        }
        var other = Model.GetTypeAnalysis(type, cancellationToken);
        return other.Model.GetUnit(method, cancellationToken) is null ? null : other.SummaryFor(method);
    }

    /// <summary>Class-wide rank taint of a field or auto-property, of this type or another.</summary>
    public ulong FieldTaint(ISymbol field, CancellationToken cancellationToken)
    {
        field = field.OriginalDefinition;
        ulong external = Model.ExternalFieldTaint.TryGetValue(field, out var e) ? e : 0;
        if (field.ContainingType is { } type && !SymbolEqualityComparer.Default.Equals(type.OriginalDefinition, Type))
        {
            if (field.DeclaringSyntaxReferences.Length == 0) return external;
            return external | Model.GetTypeAnalysis(type, cancellationToken).OwnFieldTaint(field);
        }
        return external | OwnFieldTaint(field);
    }

    ulong OwnFieldTaint(ISymbol field) => _fields.TryGetValue(field, out var v) ? v : 0;

    /// <summary>Records a (rank) taint written to a field or auto-property.</summary>
    public void OrField(ISymbol field, ulong taint)
    {
        if (taint == 0) return;
        field = field.OriginalDefinition;
        if (field.ContainingType is { } type && !SymbolEqualityComparer.Default.Equals(type.OriginalDefinition, Type))
        {
            Model.ExternalFieldTaint.AddOrUpdate(field, taint, (_, old) => old | taint);
            return;
        }
        var own = OwnFieldTaint(field);
        if ((own | taint) != own) { _fields[field] = own | taint; _fieldVersion++; }
    }
}
