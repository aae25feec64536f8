using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Per-compilation state: member bodies and their graphs, what each method does collective-wise, and the per-type
/// taint analyses. Everything is computed on demand and cached; a recursive request for a summary being computed on the
/// same thread gets a provisional answer, which handles recursion.
/// </summary>
internal sealed class CollectiveModel
{
    // Lazy: under concurrent analysis two types may ask for the same body at once; its graph is built once.
    readonly ConcurrentDictionary<ISymbol, Lazy<BodyUnit?>> _units = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<IMethodSymbol, FlowGraph> _nestedGraphs = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<IMethodSymbol, CollectiveSummary> _summaries = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<FlowGraph, List<CollectiveSite>[]> _sites = new();
    readonly ConcurrentDictionary<INamedTypeSymbol, TypeAnalysis> _types = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<ISymbol, bool> _autoProperties = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<SyntaxTree, bool> _generated = new();
    readonly ThreadLocal<HashSet<IMethodSymbol>> _summariesInProgress = new(() => new HashSet<IMethodSymbol>(SymbolEqualityComparer.Default));
    readonly ThreadLocal<int> _cycleHits = new(() => 0);
    readonly ConcurrentDictionary<INamedTypeSymbol, TypeAnalysisOwner> _owners = new(SymbolEqualityComparer.Default);
    readonly Dictionary<int, TypeAnalysisOwner> _waiting = new();
    readonly object _waitGate = new();
    readonly ThreadLocal<Dictionary<INamedTypeSymbol, TypeAnalysis>> _typesInProgress = new(() => new Dictionary<INamedTypeSymbol, TypeAnalysis>(SymbolEqualityComparer.Default));

    public CollectiveModel(Compilation compilation, AnalyzerOptions options)
    {
        Compilation = compilation;
        Options = options;
        Limits = AnalysisLimits.Read(options, compilation);
    }

    public Compilation Compilation { get; }

    public AnalyzerOptions Options { get; }

    /// <summary>The work limits for this compilation (defaults, or .editorconfig values).</summary>
    public AnalysisLimits Limits { get; }

    public KnownSymbols Known { get; } = new();

    /// <summary>Rank taint of fields and auto-properties written from outside their own type's analysis.</summary>
    public ConcurrentDictionary<ISymbol, ulong> ExternalFieldTaint { get; } = new(SymbolEqualityComparer.Default);

    /// <summary>The analysis of <paramref name="type"/>, computing it if needed; never null.</summary>
    /// <remarks>
    /// Computed once: a thread that needs a type another thread is computing waits for it, unless that thread waits
    /// (directly or through others) for this one; then, as for a recursive request on one thread, the cycle is broken
    /// here: this thread computes its own copy (with provisional answers for the types it is computing itself).
    /// </remarks>
    public TypeAnalysis GetTypeAnalysis(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        type = type.OriginalDefinition;
        if (_types.TryGetValue(type, out var done)) return done;
        var inProgress = _typesInProgress.Value!;
        if (inProgress.TryGetValue(type, out var provisional)) return provisional;

        var mine = new TypeAnalysisOwner();
        var owner = _owners.GetOrAdd(type, mine);
        if (owner != mine && WaitFor(owner, cancellationToken) is { } computed) return computed;

        var analysis = new TypeAnalysis(this, type);
        inProgress.Add(type, analysis);
        try
        {
            analysis.Run(cancellationToken);
            analysis = _types.GetOrAdd(type, analysis);
            if (owner == mine) mine.Result = analysis;
        }
        finally
        {
            inProgress.Remove(type);
            if (owner == mine)
            {
                _owners.TryRemove(type, out _);
                mine.Done.Set();
            }
        }
        return analysis;
    }

    // Waits for another thread's computation of a type; null when waiting could deadlock or that computation failed.
    TypeAnalysis? WaitFor(TypeAnalysisOwner owner, CancellationToken cancellationToken)
    {
        int me = Thread.CurrentThread.ManagedThreadId;
        lock (_waitGate)
        {
            // Follow who waits for whom from the owner; reaching this thread means a cycle.
            for (var next = owner; next is not null; next = _waiting.TryGetValue(next.ThreadId, out var w) ? w : null)
                if (next.ThreadId == me) return null;
            _waiting[me] = owner;
        }
        try
        {
            owner.Done.Wait(cancellationToken);
        }
        finally
        {
            lock (_waitGate) _waiting.Remove(me);
        }
        return owner.Result;
    }

    /// <summary>True when some body of <paramref name="type"/> performs a collective (otherwise there is nothing to report).</summary>
    public bool HasCollectives(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        foreach (var member in type.GetMembers())
        {
            if (member.DeclaringSyntaxReferences.Length == 0 || member is not (IMethodSymbol or IFieldSymbol or IPropertySymbol)) continue;
            // Decided from syntax first: most members of most types reach no collective, and need no graph.
            if (!Names(cancellationToken).MayReach(member, cancellationToken)) continue;
            var unit = GetUnit(member, cancellationToken);
            if (unit is null) continue;
            foreach (var graph in unit.Graphs)
                foreach (var block in GetSites(graph, cancellationToken))
                    if (block.Count > 0) return true;
        }
        return false;
    }

    /// <summary>The body of a source member (method, accessor, constructor), or null when it has none here.</summary>
    public BodyUnit? GetUnit(ISymbol member, CancellationToken cancellationToken)
    {
        member = member.OriginalDefinition;
        if (member is IMethodSymbol { PartialImplementationPart: { } implementation }) member = implementation;
        if (!_units.TryGetValue(member, out var lazy))
            lazy = _units.GetOrAdd(member, m => new Lazy<BodyUnit?>(() =>
            {
                var built = BuildUnit(m, cancellationToken);
                if (built is not null)
                    foreach (var pair in built.Functions) _nestedGraphs.TryAdd(pair.Key, pair.Value);
                return built;
            }, LazyThreadSafetyMode.ExecutionAndPublication));
        return lazy.Value;
    }

    /// <summary>The graph of a method's own body, of a local function or of a lambda.</summary>
    public FlowGraph? GetGraph(IMethodSymbol method, CancellationToken cancellationToken)
    {
        method = method.OriginalDefinition;
        if (method.MethodKind is MethodKind.LocalFunction or MethodKind.AnonymousFunction)
        {
            if (_nestedGraphs.TryGetValue(method, out var nested)) return nested;
            // Make sure the containing member was built; that registers its nested functions.
            for (ISymbol? owner = method.ContainingSymbol; owner is not null; owner = owner.ContainingSymbol)
                if (owner is IMethodSymbol { MethodKind: not (MethodKind.LocalFunction or MethodKind.AnonymousFunction) } or IFieldSymbol or IPropertySymbol)
                {
                    GetUnit(owner, cancellationToken);
                    break;
                }
            return _nestedGraphs.TryGetValue(method, out nested) ? nested : null;
        }
        return GetUnit(method, cancellationToken)?.Root;
    }

    BodyUnit? BuildUnit(ISymbol member, CancellationToken cancellationToken)
    {
        if (member is IMethodSymbol { IsAbstract: true } or IMethodSymbol { IsExtern: true }) return null;
        foreach (var reference in member.DeclaringSyntaxReferences)
        {
            var tree = reference.SyntaxTree;
            if (IsGenerated(tree, cancellationToken)) continue;
            var node = BodyNode(reference.GetSyntax(cancellationToken), member);
            if (node is null) continue;
            if (!Compilation.ContainsSyntaxTree(tree)) continue;
#pragma warning disable RS1030 // Summaries need other members' bodies; under the compiler this model comes from its shared cache.
            var model = Compilation.GetSemanticModel(tree);
#pragma warning restore RS1030
            ControlFlowGraph? cfg;
            try
            {
                cfg = ControlFlowGraph.Create(node, model, cancellationToken);
            }
            catch (ArgumentException)
            {
                // Not a body Roslyn builds a graph for (e.g. a declaration without body in broken code).
                continue;
            }
            if (cfg is null) continue;
            return new BodyUnit(member, cfg, Known);
        }
        return null;
    }

    /// <summary>The syntax whose operation is the member's body, or null for a member without one.</summary>
    static SyntaxNode? BodyNode(SyntaxNode declaration, ISymbol member) => declaration switch
    {
        BaseMethodDeclarationSyntax m when m.Body is not null || m.ExpressionBody is not null => m,
        AccessorDeclarationSyntax a when a.Body is not null || a.ExpressionBody is not null => a,
        ArrowExpressionClauseSyntax arrow => arrow,
        CompilationUnitSyntax unit when member is IMethodSymbol => unit,
        VariableDeclaratorSyntax { Initializer: { } initializer } => initializer,
        PropertyDeclarationSyntax { Initializer: { } initializer } => initializer,
        _ => null,
    };

    /// <summary>Generated code is not analysed (file name conventions, an auto-generated header, or editorconfig).</summary>
    public bool IsGenerated(SyntaxTree tree, CancellationToken cancellationToken) =>
        _generated.GetOrAdd(tree, t =>
        {
            var options = Options.AnalyzerConfigOptionsProvider.GetOptions(t);
            if (options.TryGetValue("generated_code", out var flag))
                return string.Equals(flag, "true", StringComparison.OrdinalIgnoreCase);
            var name = System.IO.Path.GetFileName(t.FilePath ?? "");
            if (name.EndsWith(".g.cs", StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(".g.i.cs", StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(".designer.cs", StringComparison.OrdinalIgnoreCase)
                || name.EndsWith(".generated.cs", StringComparison.OrdinalIgnoreCase)
                || name.StartsWith("TemporaryGeneratedFile_", StringComparison.OrdinalIgnoreCase))
                return true;
            foreach (var trivia in t.GetRoot(cancellationToken).GetLeadingTrivia())
            {
                if (!trivia.IsKind(SyntaxKind.SingleLineCommentTrivia) && !trivia.IsKind(SyntaxKind.MultiLineCommentTrivia))
                    continue;
                var text = trivia.ToString();
                if (text.IndexOf("<auto-generated", StringComparison.OrdinalIgnoreCase) >= 0
                    || text.IndexOf("<autogenerated", StringComparison.OrdinalIgnoreCase) >= 0)
                    return true;
            }
            return false;
        });

    /// <summary>True for an auto-property (or one using the <c>field</c> keyword): reads and writes hit storage.</summary>
    public bool IsAutoProperty(IPropertySymbol property) =>
        _autoProperties.GetOrAdd(property.OriginalDefinition, p =>
        {
            foreach (var member in p.ContainingType.GetMembers())
                if (member is IFieldSymbol { AssociatedSymbol: { } associated } && SymbolEqualityComparer.Default.Equals(associated, p))
                    return true;
            return false;
        });

    /// <summary>The collectives a call to <paramref name="method"/> performs (source methods and local functions).</summary>
    /// <remarks>
    /// A recursive request gets "none" (the enclosing computation counts the collectives); results computed while an
    /// outer summary is still open and that saw such a provisional answer are not cached, so they are redone with the
    /// final summaries.
    /// </remarks>
    public CollectiveSummary GetCollectiveSummary(IMethodSymbol method, CancellationToken cancellationToken)
    {
        method = method.OriginalDefinition;
        if (method.ReducedFrom is { } reduced) method = reduced;
        if (_summaries.TryGetValue(method, out var summary)) return summary;
        if (method.MethodKind is not (MethodKind.LocalFunction or MethodKind.AnonymousFunction)
            && !Names(cancellationToken).MayReach(method, cancellationToken))
            return _summaries.GetOrAdd(method, CollectiveSummary.None);
        var inProgress = _summariesInProgress.Value!;
        if (inProgress.Contains(method))
        {
            _cycleHits.Value++;
            return CollectiveSummary.None;
        }
        int hits = _cycleHits.Value;
        inProgress.Add(method);
        try
        {
            var graph = method.DeclaringSyntaxReferences.Length == 0 ? null : GetGraph(method, cancellationToken);
            summary = graph is null ? CollectiveSummary.None : Summarise(graph, method, cancellationToken);
        }
        finally
        {
            inProgress.Remove(method);
        }
        if (_cycleHits.Value != hits && inProgress.Count > 0) return summary;
        return _summaries.GetOrAdd(method, summary);
    }

    CollectiveSummary Summarise(FlowGraph graph, IMethodSymbol method, CancellationToken cancellationToken)
    {
        var sites = GetSites(graph, cancellationToken);
        string? display = null;
        bool may = false;
        foreach (var block in sites)
            foreach (var site in block)
            {
                display ??= site.Display;
                may |= site.May;
            }
        if (display is null) return CollectiveSummary.None;
        var sequence = Sequences.Region(graph, sites, 0, -1, out _, Limits, Stats);
        return new CollectiveSummary(true, sequence, $"{method.Name} (calls {Innermost(display)})", may);
    }

    static string Innermost(string display)
    {
        int open = display.LastIndexOf("(calls ", StringComparison.Ordinal);
        return open < 0 ? display : display.Substring(open + 7, display.Length - open - 8);
    }

    /// <summary>The collective calls in each block of <paramref name="graph"/>, in execution order.</summary>
    public List<CollectiveSite>[] GetSites(FlowGraph graph, CancellationToken cancellationToken)
    {
        if (_sites.TryGetValue(graph, out var sites)) return sites;
        var inProgress = _summariesInProgress.Value!;
        var function = graph.Function?.OriginalDefinition;
        bool opened = function is not null && inProgress.Add(function);
        int hits = _cycleHits.Value;
        sites = new List<CollectiveSite>[graph.Count];
        try
        {
            var owner = graph.Function?.ContainingType
                ?? graph.Cfg.OriginalOperation.SemanticModel?.GetEnclosingSymbol(graph.Cfg.OriginalOperation.Syntax.SpanStart, cancellationToken)?.ContainingType;
            bool inTrainer = Known.IsTrainer(owner);
            for (int b = 0; b < graph.Count; b++)
            {
                var list = new List<CollectiveSite>();
                foreach (var op in graph.Operations[b]) CollectSites(op, inTrainer, graph, list, cancellationToken);
                sites[b] = list;
            }
        }
        finally
        {
            if (opened) inProgress.Remove(function!);
        }
        if (_cycleHits.Value != hits && inProgress.Count > 0) return sites;
        return _sites.GetOrAdd(graph, sites);
    }

    void CollectSites(IOperation op, bool inTrainer, FlowGraph graph, List<CollectiveSite> sites, CancellationToken cancellationToken)
    {
        // Post-order: arguments run before the call that receives them.
        foreach (var child in op.ChildOperations)
        {
            if (child is IFlowAnonymousFunctionOperation or IAnonymousFunctionOperation or ILocalFunctionOperation) continue;
            CollectSites(child, inTrainer, graph, sites, cancellationToken);
        }
        var site = SiteOf(op, inTrainer, graph, cancellationToken);
        if (site is not null) sites.Add(site);
        if (site is not null) Stats.Add(ref Stats.Sites);
    }

    CollectiveSite? SiteOf(IOperation op, bool inTrainer, FlowGraph graph, CancellationToken cancellationToken)
    {
        IMethodSymbol? target = op switch
        {
            IInvocationOperation i => i.TargetMethod,
            IObjectCreationOperation c => c.Constructor,
            IPropertyReferenceOperation p when p.Parent is not ISimpleAssignmentOperation a || a.Target != p => p.Property.GetMethod,
            IPropertyReferenceOperation p => p.Property.SetMethod,
            _ => null,
        };
        if (target is null) return null;
        if (Known.IsCollective(target) || (inTrainer && Known.IsOptimizerStep(target)))
            return new CollectiveSite(op, target.Name, target.Name);
        if (op is IInvocationOperation invocation)
        {
            // A delegate call: the lambdas and local functions it may run, if this body created them.
            if (target.MethodKind == MethodKind.DelegateInvoke)
            {
                Stats.Add(ref Stats.DelegateCalls);
                return DelegateSite(invocation, graph, cancellationToken);
            }
            var lambdaSite = CallbackSite(invocation, cancellationToken);
            if (lambdaSite is not null && target.DeclaringSyntaxReferences.Length == 0) return lambdaSite;
            if (Dispatch.IsDispatched(invocation))
            {
                Stats.Add(ref Stats.DispatchedCalls);
                return DispatchSite(invocation, cancellationToken);
            }
        }
        if (target.DeclaringSyntaxReferences.Length == 0) return null;
        var summary = GetCollectiveSummary(target, cancellationToken);
        if (!summary.HasCollectives) return null;
        return new CollectiveSite(op, summary.Sequence ?? "~" + target.ToDisplayString(SymbolDisplayFormat.CSharpErrorMessageFormat), summary.Display, summary.May);
    }

    /// <summary>The names through which a body can reach a collective (built once, on first use).</summary>
    public CollectiveNames Names(CancellationToken cancellationToken)
    {
        lock (_namesGate) return _names ??= new CollectiveNames(Compilation, Known, cancellationToken);
    }

    readonly object _namesGate = new();
    CollectiveNames? _names;

    /// <summary>True when a file of this compilation has <c>global using static</c> (computed once).</summary>
    public bool GlobalUsingStatic(CancellationToken cancellationToken)
    {
        lock (_namesGate) return _globalUsingStatic ??= StateWrites.HasGlobalUsingStatic(Compilation, cancellationToken);
    }

    bool? _globalUsingStatic;

    /// <summary>Implementations and overrides in this compilation, and the functions assigned to delegate members.</summary>
    public Dispatch Dispatch => LazyInitializer.EnsureInitialized(ref _dispatch, () => new Dispatch(Compilation, Limits))!;

    Dispatch? _dispatch;

    /// <summary>How often the analysis gave up or could only say "may" (read by the corpus test).</summary>
    public AnalysisStats Stats { get; } = new();

    /// <summary>
    /// A call of an interface member or a virtual member: the union of the implementations and overrides it may reach
    /// in this compilation (the called member itself when it has a body). When they agree, the call performs their
    /// sequence; when only some perform collectives, or they perform different ones, it "may".
    /// </summary>
    CollectiveSite? DispatchSite(IInvocationOperation invocation, CancellationToken cancellationToken)
    {
        var targets = Dispatch.TargetsOf(invocation, out bool gaveUp);
        if (gaveUp) Stats.Add(ref Stats.DispatchGiveUps);
        return Union(invocation, targets, "~dispatch " + invocation.TargetMethod.ToDisplayString(SymbolDisplayFormat.CSharpErrorMessageFormat), cancellationToken);
    }

    /// <summary>The site of a call that runs one of <paramref name="targets"/>; null when none performs collectives.</summary>
    CollectiveSite? Union(IOperation call, List<IMethodSymbol> targets, string varying, CancellationToken cancellationToken)
    {
        string? sequence = null;
        string? display = null;
        bool may = false, without = false;
        foreach (var function in targets)
        {
            var summary = GetCollectiveSummary(function, cancellationToken);
            if (!summary.HasCollectives) { without = true; continue; }
            may |= summary.May;
            // Several candidates that do different things: the call's collectives vary.
            var token = summary.Sequence ?? "~" + function.Name;
            if (sequence is not null && sequence != token) { token = varying; may = true; }
            sequence = token;
            display ??= summary.Display;
        }
        if (sequence is null) return null;
        if (without) { may = true; sequence = varying; }
        if (may) Stats.Add(ref Stats.MaySites);
        return new CollectiveSite(call, sequence, may ? $"{display} (on some targets)" : display!, may);
    }

    /// <summary>A library call given a lambda or local function that performs collectives (e.g. <c>list.ForEach(x => ctx.Barrier())</c>).</summary>
    CollectiveSite? CallbackSite(IInvocationOperation invocation, CancellationToken cancellationToken)
    {
        foreach (var argument in invocation.Arguments)
        {
            var function = FunctionOf(argument.Value);
            if (function is null) continue;
            var summary = GetCollectiveSummary(function, cancellationToken);
            if (summary.HasCollectives)
                return new CollectiveSite(invocation, "~" + invocation.TargetMethod.Name + "(" + summary.Display + ")",
                    $"{invocation.TargetMethod.Name} (runs {Innermost(summary.Display)})");
        }
        return null;
    }

    /// <summary>
    /// A delegate call: the lambdas, local functions and methods it may run. Known for a delegate written right there,
    /// a local assigned in this body, and a field, property or event of a source type (every function assigned to it
    /// in the compilation); anything else (a parameter, a library's delegate) is an unknown target, counted as a give-up.
    /// </summary>
    CollectiveSite? DelegateSite(IInvocationOperation invocation, FlowGraph graph, CancellationToken cancellationToken)
    {
        var functions = new List<IMethodSymbol>();
        var instance = Resolve(invocation.Instance, graph);
        if (FunctionOf(instance) is { } direct) functions.Add(direct);
        else if (instance is ILocalReferenceOperation local && graph.Unit?.DelegateTargets.TryGetValue(local.Local, out var targets) == true)
            functions.AddRange(targets!);
        else if (MemberOf(instance) is { } member && member.DeclaringSyntaxReferences.Length > 0)
            functions.AddRange(Dispatch.AssignedTo(member, cancellationToken));
        if (functions.Count == 0)
        {
            Stats.Add(ref Stats.UnknownDelegateTargets);
            return null;
        }
        return Union(invocation, functions, "~" + invocation.Syntax, cancellationToken);
    }

    static ISymbol? MemberOf(IOperation? instance) => instance switch
    {
        IFieldReferenceOperation f => f.Field,
        IPropertyReferenceOperation p => p.Property,
        IEventReferenceOperation e => e.Event,
        _ => null,
    };

    /// <summary>The value behind a flow capture (what <c>x?.Invoke()</c> and <c>x!()</c> are lowered to), conversions removed.</summary>
    IOperation? Resolve(IOperation? value, FlowGraph graph)
    {
        for (int depth = 0; depth < Limits.CaptureDepth; depth++)
        {
            while (value is IConversionOperation { Operand: var operand }) value = operand;
            if (value is not IFlowCaptureReferenceOperation reference) return value;
            IOperation? captured = null;
            foreach (var block in graph.Operations)
                foreach (var op in block)
                    foreach (var node in op.DescendantsAndSelf())
                        if (node is IFlowCaptureOperation capture && capture.Id.Equals(reference.Id)) { captured = capture.Value; break; }
            if (captured is null) return value;
            value = captured;
        }
        return value;
    }

    /// <summary>The lambda or local function a delegate-valued expression denotes, when it is written right there.</summary>
    internal static IMethodSymbol? FunctionOf(IOperation? value)
    {
        while (value is IConversionOperation or IDelegateCreationOperation or IParenthesizedOperation)
            value = value switch
            {
                IConversionOperation c => c.Operand,
                IDelegateCreationOperation d => d.Target,
                IParenthesizedOperation p => p.Operand,
                _ => value,
            };
        return value switch
        {
            IFlowAnonymousFunctionOperation f => f.Symbol,
            IAnonymousFunctionOperation a => a.Symbol,
            IMethodReferenceOperation { Method: { } m } when m.DeclaringSyntaxReferences.Length > 0 => m,
            _ => null,
        };
    }
}
