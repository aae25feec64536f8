using System;
using System.Collections.Generic;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Forward taint dataflow over one <see cref="FlowGraph"/> to a fixed point: locals, parameters and flow captures are
/// tracked per program point (so overwriting with a rank-uniform value kills the taint); fields and auto-properties
/// start from their class-wide taint; values assigned in blocks that are control dependent on a tainted branch pick up
/// that branch's taint.
/// </summary>
internal sealed class TaintPass
{
    readonly TypeAnalysis _analysis;
    readonly UnitState _unit;
    readonly FlowGraph _graph;
    readonly KnownSymbols _known;
    readonly AnalysisLimits _limits;
    readonly CancellationToken _cancellationToken;
    readonly Dictionary<object, int> _slots = new(new KeyComparer());
    readonly TaintSummary? _summary;
    ulong[] _state = Array.Empty<ulong>();
    ulong _control;

    public TaintPass(TypeAnalysis analysis, UnitState unit, FlowGraph graph, CancellationToken cancellationToken)
    {
        _analysis = analysis;
        _unit = unit;
        _graph = graph;
        _known = analysis.Model.Known;
        _limits = analysis.Model.Limits;
        _cancellationToken = cancellationToken;
        _summary = graph.Function is null ? null : analysis.SummaryFor(graph.Function);
        Result = new GraphTaint(graph.Count);
    }

    public GraphTaint Result { get; }

    /// <summary>Summaries and class-wide fields this pass read: when none changed, a rerun would give the same result.</summary>
    public HashSet<TaintSummary> ReadSummaries { get; } = new();

    public HashSet<ISymbol> ReadFields { get; } = new(SymbolEqualityComparer.Default);

    TaintSummary? Summary(IMethodSymbol method, CancellationToken cancellationToken)
    {
        var summary = _analysis.TaintSummaryOf(method, cancellationToken);
        if (summary is not null) ReadSummaries.Add(summary);
        return summary;
    }

    ulong Field(ISymbol field, CancellationToken cancellationToken)
    {
        ReadFields.Add(field);
        return _analysis.FieldTaint(field, cancellationToken);
    }

    public void Run()
    {
        // Slots for everything this graph reads or writes.
        for (int b = 0; b < _graph.Count; b++)
            foreach (var op in _graph.Operations[b])
                foreach (var node in op.DescendantsAndSelf())
                {
                    var key = KeyOf(node);
                    if (key is not null && !_slots.ContainsKey(key)) _slots.Add(key, _slots.Count);
                    if (node is IVariableDeclaratorOperation declarator && !_slots.ContainsKey(declarator.Symbol))
                        _slots.Add(declarator.Symbol, _slots.Count);
                }
        var initial = new ulong[_slots.Count];
        foreach (var pair in _slots)
        {
            initial[pair.Value] = pair.Key switch
            {
                IParameterSymbol p when SymbolEqualityComparer.Default.Equals(p.ContainingSymbol, _graph.Function) => Taint.Parameter(p.Ordinal),
                IFieldSymbol or IPropertySymbol => Field((ISymbol)pair.Key, _cancellationToken),
                _ => 0,
            };
        }

        // Block outputs live in arrays allocated once per pass; hasOut says which hold this round's output (the
        // others count as empty in a join). Each transfer runs on one scratch array.
        var outStates = new ulong[_graph.Count][];
        var hasOut = new bool[_graph.Count];
        var scratch = new ulong[initial.Length];
        bool converged = false;
        for (int round = 0; round < _limits.TaintRounds && !converged; round++)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            Array.Clear(hasOut, 0, hasOut.Length);
            var work = new Queue<int>();
            var queued = new bool[_graph.Count];
            for (int b = 0; b < _graph.Count; b++) { work.Enqueue(b); queued[b] = true; }
            int steps = 0;
            while (work.Count > 0 && steps++ < _limits.StepsPerBlock * (_graph.Count + 1))
            {
                int b = work.Dequeue();
                queued[b] = false;
                if (b == 0) Array.Copy(initial, scratch, initial.Length);
                else Join(b, outStates, hasOut, scratch);
                var output = Transfer(b, scratch);
                if (hasOut[b] && Same(outStates[b], output)) continue;
                if (outStates[b] is { } kept) Array.Copy(output, kept, output.Length);
                else { outStates[b] = output; scratch = new ulong[initial.Length]; }
                hasOut[b] = true;
                foreach (int s in _graph.Successors[b])
                    if (!queued[s]) { queued[s] = true; work.Enqueue(s); }
                // Blocks without predecessors (catch and finally handlers) join everything.
                foreach (int orphan in Orphans())
                    if (!queued[orphan]) { queued[orphan] = true; work.Enqueue(orphan); }
            }
            if (work.Count > 0) _analysis.Model.Stats.Add(ref _analysis.Model.Stats.TaintRoundLimits);
            var control = ComputeControl();
            converged = Same(control, Result.Control);
            Result.Control = control;
        }
        if (!converged) _analysis.Model.Stats.Add(ref _analysis.Model.Stats.TaintRoundLimits);
    }

    List<int>? _orphans;

    List<int> Orphans()
    {
        if (_orphans is not null) return _orphans;
        _orphans = new List<int>();
        for (int b = 1; b < _graph.Count; b++)
            if (_graph.Predecessors[b].Count == 0) _orphans.Add(b);
        return _orphans;
    }

    /// <summary>The union of the outputs of <paramref name="block"/>'s predecessors (of every block for one without any), into <paramref name="result"/>.</summary>
    void Join(int block, ulong[][] outStates, bool[] hasOut, ulong[] result)
    {
        Array.Clear(result, 0, result.Length);
        var preds = _graph.Predecessors[block];
        if (preds.Count == 0)
        {
            for (int b = 0; b < outStates.Length; b++)
                if (hasOut[b]) Or(result, outStates[b]);
            return;
        }
        foreach (int p in preds)
            if (hasOut[p]) Or(result, outStates[p]);
    }

    static void Or(ulong[] into, ulong[] from)
    {
        for (int i = 0; i < into.Length; i++) into[i] |= from[i];
    }

    static bool Same(ulong[] a, ulong[] b)
    {
        if (a.Length != b.Length) return false;
        for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return false;
        return true;
    }

    ulong[] ComputeControl()
    {
        var control = new ulong[_graph.Count];
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int b = 0; b < _graph.Count; b++)
            {
                ulong value = control[b];
                foreach (int c in _graph.ControlDependences[b]) value |= Result.Condition[c] | control[c];
                if (value != control[b]) { control[b] = value; changed = true; }
            }
        }
        return control;
    }

    ulong[] Transfer(int b, ulong[] state)
    {
        _state = state;
        _control = Result.Control[b];
        var block = _graph.Block(b);
        var ops = _graph.Operations[b];
        for (int i = 0; i < ops.Count; i++)
        {
            var value = Eval(ops[i]);
            if (block.BranchValue is not null && ReferenceEquals(ops[i], block.BranchValue))
            {
                if (block.ConditionKind != ControlFlowConditionKind.None) Result.Condition[b] |= value;
                else if (block.FallThroughSuccessor?.Semantics == ControlFlowBranchSemantics.Return)
                    _summary?.OrReturn(value | _control);
            }
        }
        return state;
    }

    // ---- keys ----

    object? KeyOf(IOperation op) => op switch
    {
        ILocalReferenceOperation l => l.Local,
        IParameterReferenceOperation p => p.Parameter,
        IFlowCaptureReferenceOperation c => c.Id,
        IFlowCaptureOperation c => c.Id,
        IFieldReferenceOperation f when IsOwnInstance(f.Instance) && !f.Field.IsConst => f.Field.OriginalDefinition,
        IPropertyReferenceOperation p when IsOwnInstance(p.Instance) && p.Arguments.Length == 0
            && _analysis.Model.IsAutoProperty(p.Property) => p.Property.OriginalDefinition,
        _ => null,
    };

    static bool IsOwnInstance(IOperation? instance) =>
        instance is null || instance is IInstanceReferenceOperation { ReferenceKind: InstanceReferenceKind.ContainingTypeInstance };

    ulong Read(object key)
    {
        if (key is ISymbol symbol && _unit.Captured.Contains(symbol)) return _unit.Get(symbol);
        return _slots.TryGetValue(key, out int slot) ? _state[slot] : 0;
    }

    void Write(object key, ulong value)
    {
        if (key is ISymbol symbol)
        {
            if (_unit.Captured.Contains(symbol)) { _unit.Or(symbol, value); return; }
            switch (symbol)
            {
                case IFieldSymbol or IPropertySymbol:
                    _analysis.OrField(symbol, value & Taint.Rank);
                    _summary?.OrFieldWrite(symbol, value & Taint.Params);
                    break;
                case IParameterSymbol { RefKind: RefKind.Ref or RefKind.Out } p when SymbolEqualityComparer.Default.Equals(p.ContainingSymbol, _graph.Function):
                    _summary?.OrOut(p.Ordinal, value);
                    break;
            }
        }
        if (_slots.TryGetValue(key, out int slot)) _state[slot] = value;
    }

    // ---- evaluation ----

    ulong Eval(IOperation? op)
    {
        if (op is null) return 0;
        // A constant is the same on every rank, whatever it was computed from.
        if (op.ConstantValue.HasValue) return 0;
        switch (op)
        {
            case ILocalReferenceOperation or IParameterReferenceOperation or IFlowCaptureReferenceOperation:
                // A tracked slot: its taint at this program point (captured locals: the unit-wide taint).
                return Read(KeyOf(op)!);
            case IFlowCaptureOperation capture:
            {
                // A compiler temporary (?:, ??, ?.): holds its value's taint, plus the taint of the branch that set it.
                var value = Eval(capture.Value) | _control;
                Write(capture.Id, value);
                return value;
            }
            case ISimpleAssignmentOperation { Value: ICaughtExceptionOperation } caught:
                // Which exception a catch got is not rank data; whether one was thrown is control flow, which the
                // graph's throw edges already carry.
                Assign(caught.Target, 0);
                return 0;
            case ISimpleAssignmentOperation assignment:
            {
                // x = v: a strong update; x takes v's taint and the taint of the branches this block depends on.
                var value = Eval(assignment.Value) | _control;
                Assign(assignment.Target, value);
                return value;
            }
            case IAssignmentOperation combining when combining is ICompoundAssignmentOperation or ICoalesceAssignmentOperation:
            {
                // x op= v and x ??= v: the result depends on the old value of x too.
                var value = Eval(combining.Target) | Eval(combining.Value) | _control;
                Assign(combining.Target, value);
                return value;
            }
            case IIncrementOrDecrementOperation increment:
            {
                // x++: the new value depends on the old one only.
                var value = Eval(increment.Target) | _control;
                Assign(increment.Target, value);
                return value;
            }
            case IDeconstructionAssignmentOperation deconstruction:
                // (a, b) = (x, y): element-wise when both sides are tuples, else every target gets the whole value.
                return Deconstruct(deconstruction.Target, deconstruction.Value);
            case IVariableDeclarationGroupOperation group:
                // var x = v, y = w: each declarator is an assignment of its initializer.
                foreach (var declaration in group.Declarations)
                    foreach (var declarator in declaration.Declarators)
                    {
                        var init = declarator.Initializer ?? declaration.Initializer;
                        if (init is not null) Write(declarator.Symbol, Eval(init.Value) | _control);
                    }
                return 0;
            case IFieldReferenceOperation field:
                // Marked members, own fields tracked per point, other fields by their class-wide taint.
                return EvalField(field);
            case IPropertyReferenceOperation property:
                // Marked members, auto-properties like fields, other getters through their summary.
                return EvalProperty(property);
            case IInvocationOperation invocation:
                // Rank sources, [RankUniform] results, source methods through their summary, library calls from all inputs.
                return EvalInvocation(invocation);
            case IObjectCreationOperation creation:
            {
                // new T(args) { init }: the object carries the taint of everything it was built from.
                ulong value = EvalArguments(creation.Arguments, out _);
                if (creation.Initializer is not null) value |= Eval(creation.Initializer);
                return value;
            }
            case IIsPatternOperation isPattern:
            {
                // x is P: the match depends on x and on the pattern's operands; declared variables take x's taint.
                var value = Eval(isPattern.Value);
                return value | Pattern(isPattern.Pattern, value);
            }
            case IFlowAnonymousFunctionOperation lambda:
                // A lambda value: rank-dependent when what it returns is (it may be called anywhere).
                return Summary(lambda.Symbol, _cancellationToken)!.Return & Taint.Rank;
            case IReturnOperation { Kind: OperationKind.YieldReturn } yield:
            {
                // yield return v: part of the iterator's result, like a return value.
                var value = Eval(yield.ReturnedValue);
                _summary?.OrReturn(value | _control);
                return 0;
            }
            case IInstanceReferenceOperation or ITypeOfOperation or ISizeOfOperation or INameOfOperation or IDefaultValueOperation:
                // this, typeof, sizeof, nameof, default: the same on every rank.
                return 0;
            default:
            {
                // Anything else (operators, conversions, element access, interpolation...): the union of its operands.
                ulong value = 0;
                foreach (var child in op.ChildOperations) value |= Eval(child);
                return value;
            }
        }
    }

    ulong Pattern(IPatternOperation pattern, ulong input)
    {
        ulong value = 0;
        switch (pattern)
        {
            case IDeclarationPatternOperation { DeclaredSymbol: { } declared }:
                Write(declared, input | _control);
                break;
            case IRecursivePatternOperation recursive:
                if (recursive.DeclaredSymbol is { } symbol) Write(symbol, input | _control);
                foreach (var sub in recursive.PropertySubpatterns)
                {
                    var member = sub.Member switch
                    {
                        IPropertyReferenceOperation p => (ISymbol)p.Property,
                        IFieldReferenceOperation f => f.Field,
                        _ => null,
                    };
                    ulong memberTaint = member is not null && _known.IsRankDependent(member) ? Taint.Rank
                        : member is not null && _known.IsRankUniform(member) ? 0 : input;
                    value |= memberTaint | Pattern(sub.Pattern, memberTaint);
                }
                foreach (var sub in recursive.DeconstructionSubpatterns) value |= Pattern(sub, input);
                break;
            case IBinaryPatternOperation binary:
                value |= Pattern(binary.LeftPattern, input) | Pattern(binary.RightPattern, input);
                break;
            case INegatedPatternOperation negated:
                value |= Pattern(negated.Pattern, input);
                break;
            case IConstantPatternOperation constant:
                value |= Eval(constant.Value);
                break;
            case IRelationalPatternOperation relational:
                value |= Eval(relational.Value);
                break;
        }
        return value;
    }

    ulong Deconstruct(IOperation target, IOperation value)
    {
        while (target is IDeclarationExpressionOperation declaration) target = declaration.Expression;
        var source = value;
        while (source is IConversionOperation conversion) source = conversion.Operand;
        if (target is ITupleOperation targets)
        {
            if (source is ITupleOperation values && values.Elements.Length == targets.Elements.Length)
            {
                ulong all = 0;
                for (int i = 0; i < targets.Elements.Length; i++)
                    all |= Deconstruct(targets.Elements[i], values.Elements[i]);
                return all;
            }
            var whole = Eval(value) | _control;
            AssignAll(targets, whole);
            return whole;
        }
        var single = Eval(value) | _control;
        Assign(target, single);
        return single;
    }

    void AssignAll(ITupleOperation targets, ulong value)
    {
        foreach (var element in targets.Elements)
        {
            var target = element;
            while (target is IDeclarationExpressionOperation declaration) target = declaration.Expression;
            if (target is ITupleOperation nested) AssignAll(nested, value);
            else Assign(target, value);
        }
    }

    void Assign(IOperation target, ulong value)
    {
        while (target is IDeclarationExpressionOperation declaration) target = declaration.Expression;
        var key = KeyOf(target);
        if (key is not null) { Write(key, value); return; }
        switch (target)
        {
            case IFieldReferenceOperation field:
                Eval(field.Instance);
                _analysis.OrField(field.Field.OriginalDefinition, value & Taint.Rank);
                break;
            case IPropertyReferenceOperation property when _analysis.Model.IsAutoProperty(property.Property):
                Eval(property.Instance);
                _analysis.OrField(property.Property.OriginalDefinition, value & Taint.Rank);
                break;
            case IPropertyReferenceOperation { Property.SetMethod: { } setter } property:
            {
                Eval(property.Instance);
                var summary = Summary(setter, _cancellationToken);
                if (summary is null) break;
                // The setter's last parameter is the assigned value.
                int valueOrdinal = setter.Parameters.Length - 1;
                foreach (var write in summary.FieldWrites)
                    if (Taint.HasParameter(write.Value, valueOrdinal)) _analysis.OrField(write.Key, value & Taint.Rank);
                break;
            }
            case IArrayElementReferenceOperation element:
            {
                // A weak update: the array holds a tainted element from now on.
                foreach (var index in element.Indices) Eval(index);
                var arrayKey = KeyOf(element.ArrayReference);
                if (arrayKey is not null) Write(arrayKey, Read(arrayKey) | value);
                break;
            }
            case ITupleOperation tuple:
                AssignAll(tuple, value);
                break;
            default:
                Eval(target);
                break;
        }
    }

    ulong EvalField(IFieldReferenceOperation field)
    {
        var symbol = field.Field;
        if (symbol.IsConst || _known.IsRankUniform(symbol)) { Eval(field.Instance); return 0; }
        if (_known.IsRankDependent(symbol)) { Eval(field.Instance); return Taint.Rank; }
        var key = KeyOf(field);
        if (key is not null) return Read(key);
        return Eval(field.Instance) | Field(symbol.OriginalDefinition, _cancellationToken);
    }

    ulong EvalProperty(IPropertyReferenceOperation property)
    {
        var symbol = property.Property;
        ulong receiver = Eval(property.Instance);
        ulong args = EvalArguments(property.Arguments, out var argumentTaints);
        if (_known.IsRankDependent(symbol)) return Taint.Rank;
        if (_known.IsRankUniform(symbol)) return 0;
        var key = KeyOf(property);
        if (key is not null) return Read(key);
        if (_analysis.Model.IsAutoProperty(symbol))
            return receiver | Field(symbol.OriginalDefinition, _cancellationToken);
        if (symbol.GetMethod is { } getter && Summary(getter, _cancellationToken) is { } summary)
            return receiver | Map(summary.Return, property.Arguments, argumentTaints);
        return receiver | args;
    }

    ulong EvalArguments(System.Collections.Immutable.ImmutableArray<IArgumentOperation> arguments, out ulong[] taints)
    {
        // Most are property reads without arguments: no array for those.
        taints = arguments.Length == 0 ? Array.Empty<ulong>() : new ulong[arguments.Length];
        ulong all = 0;
        for (int i = 0; i < arguments.Length; i++)
        {
            var argument = arguments[i];
            if (argument.Parameter?.RefKind == RefKind.Out) continue;
            var value = Eval(argument.Value);
            taints[i] = value;
            all |= value;
        }
        return all;
    }

    /// <summary>
    /// Keeps the taint of a call's arguments for the deadlock checks, which read it only for calls of source methods
    /// (library calls are the most and would only fill <see cref="GraphTaint.Arguments"/>, a hash per argument).
    /// </summary>
    void RecordArguments(System.Collections.Immutable.ImmutableArray<IArgumentOperation> arguments, ulong[] taints)
    {
        for (int i = 0; i < arguments.Length; i++)
            if (taints[i] != 0) Result.Arguments[arguments[i]] = taints[i];
    }

    static ulong Map(ulong summary, System.Collections.Immutable.ImmutableArray<IArgumentOperation> arguments, ulong[] taints)
    {
        ulong value = summary & Taint.Rank;
        if ((summary & Taint.Params) == 0) return value;
        for (int i = 0; i < arguments.Length; i++)
            if (arguments[i].Parameter is { } parameter && Taint.HasParameter(summary, parameter.Ordinal)) value |= taints[i];
        return value;
    }

    ulong EvalInvocation(IInvocationOperation invocation)
    {
        var method = invocation.TargetMethod;
        ulong receiver = Eval(invocation.Instance);
        ulong args = EvalArguments(invocation.Arguments, out var taints);
        if (KnownSymbols.IsRankVariableRead(invocation) || _known.IsRankDependent(method)) { RecordArguments(invocation.Arguments, taints); return Taint.Rank; }
        if (_known.IsRankUniform(method)) { RecordArguments(invocation.Arguments, taints); return 0; }

        var summary = Summary(method, _cancellationToken);
        if (summary is not null)
        {
            RecordArguments(invocation.Arguments, taints);
            foreach (var argument in invocation.Arguments)
                if (argument.Parameter is { RefKind: RefKind.Ref or RefKind.Out } parameter
                    && summary.Outs.TryGetValue(parameter.Ordinal, out var outTaint))
                    Assign(argument.Value, Map(outTaint, invocation.Arguments, taints) | _control);
            foreach (var write in summary.FieldWrites)
                if ((Map(write.Value, invocation.Arguments, taints) & Taint.Rank) != 0)
                    _analysis.OrField(write.Key, Taint.Rank);
            return Map(summary.Return, invocation.Arguments, taints) | (method.IsStatic ? 0 : receiver & Taint.Rank & ReceiverMatters(method));
        }

        // A library method: its results depend on everything it is given.
        ulong all = receiver | args;
        foreach (var argument in invocation.Arguments)
            if (argument.Parameter?.RefKind is RefKind.Ref or RefKind.Out) Assign(argument.Value, all | _control);
        // Filling a collection with rank-dependent values (or only on some ranks) makes the collection rank-dependent.
        if (invocation.Instance is { } instance && KeyOf(instance) is { } key && IsCollection(instance.Type))
        {
            ulong added = args | _control;
            if (added != 0) Write(key, Read(key) | added);
        }
        return all;
    }

    /// <summary>Whether a source method's result can depend on its receiver's state (instance methods of other types).</summary>
    static ulong ReceiverMatters(IMethodSymbol method) => method.MethodKind is MethodKind.LocalFunction or MethodKind.AnonymousFunction ? 0 : ulong.MaxValue;

    static bool IsCollection(ITypeSymbol? type)
    {
        if (type is null || type.SpecialType == SpecialType.System_String) return false;
        foreach (var itf in type.AllInterfaces)
            if (itf.SpecialType == SpecialType.System_Collections_IEnumerable) return true;
        return false;
    }

    /// <summary>Symbols by symbol equality, flow captures by id.</summary>
    sealed class KeyComparer : IEqualityComparer<object>
    {
        public new bool Equals(object? x, object? y) =>
            x is ISymbol a && y is ISymbol b ? SymbolEqualityComparer.Default.Equals(a, b) : object.Equals(x, y);

        public int GetHashCode(object obj) => obj is ISymbol s ? SymbolEqualityComparer.Default.GetHashCode(s) : obj.GetHashCode();
    }
}
