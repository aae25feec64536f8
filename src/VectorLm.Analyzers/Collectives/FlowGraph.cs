using System.Collections.Generic;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.FlowAnalysis;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// One function body (member, local function or lambda) as a graph over Roslyn's <see cref="ControlFlowGraph"/> blocks,
/// with the edges the CFG leaves implicit made explicit: throw edges and calls that never return (Environment.Exit,
/// [DoesNotReturn]) go to the exit block, so every path ends in one virtual exit. Post-dominators and control
/// dependence (the post-dominance frontier of each block, iterated through <see cref="ControlDependences"/>) are
/// computed once here.
/// </summary>
internal sealed class FlowGraph
{
    public FlowGraph(ControlFlowGraph cfg, IMethodSymbol? function, KnownSymbols known)
    {
        Cfg = cfg;
        Function = function;
        var blocks = cfg.Blocks;
        Count = blocks.Length;
        Exit = Count - 1;
        Operations = new List<IOperation>[Count];
        Successors = new int[Count][];
        for (int b = 0; b < Count; b++)
        {
            var block = blocks[b];
            var ops = new List<IOperation>(block.Operations.Length + 1);
            bool noReturn = false;
            foreach (var op in block.Operations)
            {
                ops.Add(op);
                if (CallsNoReturn(op, known)) { noReturn = true; break; }
            }
            if (!noReturn && block.BranchValue is { } branch)
            {
                ops.Add(branch);
                noReturn = CallsNoReturn(branch, known);
            }
            Operations[b] = ops;
            if (b == Exit) { Successors[b] = System.Array.Empty<int>(); continue; }
            if (noReturn) { Successors[b] = new[] { Exit }; continue; }
            if (block.FallThroughSuccessor?.Semantics is ControlFlowBranchSemantics.Throw or ControlFlowBranchSemantics.Rethrow)
            {
                Successors[b] = HandlersOf(block);
                continue;
            }
            int fall = block.FallThroughSuccessor?.Destination?.Ordinal ?? Exit;
            if (block.ConditionKind != ControlFlowConditionKind.None && block.ConditionalSuccessor is { } filterBranch
                && (filterBranch.Destination is null || block.FallThroughSuccessor?.Destination is null)
                && FilterOf(block) is { } filter)
            {
                // A 'catch when' filter that rejects the exception: the search goes on to the next handlers.
                var accepted = (filterBranch.Destination ?? block.FallThroughSuccessor?.Destination)?.Ordinal;
                var rejected = ContinueSearch(filter);
                Successors[b] = accepted is not { } a || rejected.Contains(a) ? rejected : new[] { a }.Concat(rejected).ToArray();
                continue;
            }
            if (block.ConditionKind != ControlFlowConditionKind.None && block.ConditionalSuccessor is { } conditional)
            {
                int cond = conditional.Destination?.Ordinal ?? Exit;
                // The compiler's own "no arm matched" throw of a switch expression is not a path a rank takes.
                if (IsImplicitThrow(blocks, cond)) Successors[b] = new[] { fall };
                else if (IsImplicitThrow(blocks, fall)) Successors[b] = new[] { cond };
                else Successors[b] = cond == fall ? new[] { fall } : new[] { cond, fall };
            }
            else
            {
                Successors[b] = new[] { fall };
            }
        }
        Predecessors = new List<int>[Count];
        for (int b = 0; b < Count; b++) Predecessors[b] = new List<int>();
        for (int b = 0; b < Count; b++)
            foreach (int s in Successors[b]) Predecessors[s].Add(b);
        ImmediatePostDominator = ComputePostDominators();
        ControlDependences = ComputeControlDependences();
    }

    public ControlFlowGraph Cfg { get; }

    /// <summary>The member body this graph belongs to (set once the unit is built).</summary>
    public BodyUnit? Unit { get; set; }

    /// <summary>The method, local function or lambda whose body this is; null for field and property initializers.</summary>
    public IMethodSymbol? Function { get; }

    public int Count { get; }

    public int Exit { get; }

    /// <summary>Each block's operations in execution order, its branch value last, cut after a call that never returns.</summary>
    public List<IOperation>[] Operations { get; }

    public int[][] Successors { get; }

    public List<int>[] Predecessors { get; }

    /// <summary>Immediate post-dominator of each block; the exit's is -1.</summary>
    public int[] ImmediatePostDominator { get; }

    /// <summary>For each block, the branching blocks it is directly control dependent on.</summary>
    public List<int>[] ControlDependences { get; }

    public bool IsBranch(int block) => Successors[block].Length > 1;

    /// <summary>True when a path from <paramref name="branch"/> comes back to it before reaching <paramref name="stop"/> (a loop).</summary>
    public bool ReachesItself(int branch, int stop)
    {
        var seen = new HashSet<int>();
        var work = new Stack<int>();
        foreach (int s in Successors[branch]) if (s != stop && seen.Add(s)) work.Push(s);
        while (work.Count > 0)
        {
            int n = work.Pop();
            if (n == branch) return true;
            foreach (int s in Successors[n]) if (s != stop && seen.Add(s)) work.Push(s);
        }
        return false;
    }

    public BasicBlock Block(int b) => Cfg.Blocks[b];

    static bool IsImplicitThrow(System.Collections.Immutable.ImmutableArray<BasicBlock> blocks, int b) =>
        b < blocks.Length - 1
        && blocks[b].FallThroughSuccessor?.Semantics == ControlFlowBranchSemantics.Throw
        && blocks[b].BranchValue is { IsImplicit: true } value
        && value.Syntax is Microsoft.CodeAnalysis.CSharp.Syntax.SwitchExpressionSyntax;

    /// <summary>
    /// Where a throw (or rethrow) in <paramref name="block"/> can go, following Roslyn's regions outwards: the handlers
    /// (catch blocks, or the filters of <c>catch when</c>) of every enclosing try, up to the first handler that surely
    /// catches the thrown type, else on to the exit. A throw caught in the method is not an exit.
    /// </summary>
    int[] HandlersOf(BasicBlock block)
    {
        var thrown = block.FallThroughSuccessor!.Semantics == ControlFlowBranchSemantics.Throw ? ThrownType(block.BranchValue) : null;
        var targets = new List<int>();
        return HandlersFrom(block.EnclosingRegion, thrown, targets) ? targets.ToArray() : targets.Append(Exit).ToArray();
    }

    // Adds the handlers of every try enclosing `region` (inclusive), innermost first; true when one surely catches.
    static bool HandlersFrom(ControlFlowRegion? region, ITypeSymbol? thrown, List<int> targets)
    {
        for (; region is not null; region = region.EnclosingRegion)
        {
            if (region.Kind != ControlFlowRegionKind.Try || region.EnclosingRegion is not { Kind: ControlFlowRegionKind.TryAndCatch } tryAndCatch)
                continue;
            if (AddHandlers(tryAndCatch, after: region, thrown, targets)) return true;
        }
        return false;
    }

    // The handlers of a try/catch that come after `after`, up to one that surely catches the thrown type.
    static bool AddHandlers(ControlFlowRegion tryAndCatch, ControlFlowRegion after, ITypeSymbol? thrown, List<int> targets)
    {
        bool past = false;
        foreach (var handler in tryAndCatch.NestedRegions)
        {
            if (!past) { past = handler == after; continue; }
            if (!targets.Contains(handler.FirstBlockOrdinal)) targets.Add(handler.FirstBlockOrdinal);
            if (handler.Kind == ControlFlowRegionKind.Catch && SurelyCatches(handler.ExceptionType, thrown)) return true;
        }
        return false;
    }

    static ControlFlowRegion? FilterOf(BasicBlock block)
    {
        for (var region = block.EnclosingRegion; region is not null; region = region.EnclosingRegion)
            if (region.Kind == ControlFlowRegionKind.Filter) return region;
        return null;
    }

    // Where the exception goes when a filter rejects it: the later handlers of the same try, then the outer tries.
    int[] ContinueSearch(ControlFlowRegion filter)
    {
        var targets = new List<int>();
        if (filter.EnclosingRegion is { Kind: ControlFlowRegionKind.FilterAndHandler } filterAndHandler
            && filterAndHandler.EnclosingRegion is { Kind: ControlFlowRegionKind.TryAndCatch } tryAndCatch
            && (AddHandlers(tryAndCatch, filterAndHandler, null, targets) || HandlersFrom(tryAndCatch.EnclosingRegion, null, targets)))
            return targets.ToArray();
        return targets.Append(Exit).ToArray();
    }

    static ITypeSymbol? ThrownType(IOperation? value)
    {
        while (value is IConversionOperation { IsImplicit: true } conversion) value = conversion.Operand;
        return value?.Type;
    }

    // A catch without a filter catches the thrown type when it names the type or a base of it (catch-all included).
    static bool SurelyCatches(ITypeSymbol? catchType, ITypeSymbol? thrown)
    {
        if (catchType is null || catchType.SpecialType == SpecialType.System_Object) return true;
        if (catchType is { Name: "Exception", ContainingNamespace: { Name: "System", ContainingNamespace.IsGlobalNamespace: true } }) return true;
        for (var t = thrown; t is not null; t = t.BaseType)
            if (SymbolEqualityComparer.Default.Equals(t, catchType)) return true;
        return false;
    }

    static bool CallsNoReturn(IOperation op, KnownSymbols known)
    {
        // Only a call that is the statement itself ends the path; one nested in an expression might not run.
        var root = op is IExpressionStatementOperation statement ? statement.Operation : op;
        if (root is IConversionOperation conversion) root = conversion.Operand;
        return root is IInvocationOperation invocation && known.IsNoReturn(invocation.TargetMethod);
    }

    int[] ComputePostDominators()
    {
        // Cooper, Harvey and Kennedy's iterative algorithm on the reversed graph. Blocks that cannot reach the exit
        // (infinite loops) are given a virtual edge to it so that every block has a post-dominator.
        var successors = new List<int>[Count];
        var predecessors = new List<int>[Count];
        for (int b = 0; b < Count; b++) { successors[b] = new List<int>(Successors[b]); predecessors[b] = new List<int>(Predecessors[b]); }
        var reaches = new bool[Count];
        var work = new Stack<int>();
        reaches[Exit] = true;
        work.Push(Exit);
        while (work.Count > 0)
            foreach (int p in predecessors[work.Pop()])
                if (!reaches[p]) { reaches[p] = true; work.Push(p); }
        for (int b = 0; b < Count; b++)
            if (!reaches[b]) { successors[b].Add(Exit); predecessors[Exit].Add(b); }

        // Post-order of a depth-first walk of the reversed graph from the exit.
        var postOrder = new List<int>(Count);
        var visited = new bool[Count];
        var stack = new Stack<(int Node, int Next)>();
        visited[Exit] = true;
        stack.Push((Exit, 0));
        while (stack.Count > 0)
        {
            var (node, next) = stack.Pop();
            var preds = predecessors[node];
            if (next < preds.Count)
            {
                stack.Push((node, next + 1));
                int p = preds[next];
                if (!visited[p]) { visited[p] = true; stack.Push((p, 0)); }
            }
            else
            {
                postOrder.Add(node);
            }
        }
        var reversePostOrder = postOrder;
        var order = new int[Count];
        for (int i = 0; i < reversePostOrder.Count; i++) order[reversePostOrder[i]] = i;
        var ipdom = new int[Count];
        for (int b = 0; b < Count; b++) ipdom[b] = -1;
        ipdom[Exit] = Exit;
        bool changed = true;
        while (changed)
        {
            changed = false;
            for (int i = reversePostOrder.Count - 1; i >= 0; i--)
            {
                int b = reversePostOrder[i];
                if (b == Exit) continue;
                int candidate = -1;
                foreach (int s in successors[b])
                {
                    if (ipdom[s] == -1) continue;
                    candidate = candidate == -1 ? s : Intersect(candidate, s);
                }
                if (candidate != -1 && ipdom[b] != candidate) { ipdom[b] = candidate; changed = true; }
            }
        }
        ipdom[Exit] = -1;
        return ipdom;

        int Intersect(int a, int b)
        {
            while (a != b)
            {
                while (order[a] < order[b]) a = ipdom[a];
                while (order[b] < order[a]) b = ipdom[b];
            }
            return a;
        }
    }

    List<int>[] ComputeControlDependences()
    {
        var deps = new List<int>[Count];
        for (int b = 0; b < Count; b++) deps[b] = new List<int>();
        for (int c = 0; c < Count; c++)
        {
            if (!IsBranch(c)) continue;
            int stop = ImmediatePostDominator[c];
            foreach (int s in Successors[c])
            {
                for (int runner = s; runner != stop && runner >= 0; runner = ImmediatePostDominator[runner])
                {
                    if (!deps[runner].Contains(c)) deps[runner].Add(c);
                    if (runner == Exit) break;
                }
            }
        }
        return deps;
    }
}
