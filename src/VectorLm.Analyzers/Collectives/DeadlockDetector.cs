using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Finds rank-dependent branches whose successors perform different sequences of collectives up to the branch's
/// immediate post-dominator (where the paths meet again), and reports the collectives in between. Branches on
/// parameters instead of the rank make the parameter a "control parameter" of the function, checked at call sites.
/// </summary>
internal sealed class DeadlockDetector
{
    readonly TypeAnalysis _analysis;
    readonly CancellationToken _cancellationToken;

    public DeadlockDetector(TypeAnalysis analysis, CancellationToken cancellationToken)
    {
        _analysis = analysis;
        _cancellationToken = cancellationToken;
    }

    /// <summary>The three ways a rank-dependent branch deadlocks: VLM1001, VLM1002 and VLM1003.</summary>
    enum Shape { Branch, Loop, EarlyExit }

    /// <summary>The descriptor for a shape at one certainty level.</summary>
    static DiagnosticDescriptor Descriptor(Shape shape, bool certain) => shape switch
    {
        Shape.Loop => certain ? DiagnosticDescriptors.RankDependentLoop : DiagnosticDescriptors.MaybeRankDependentLoop,
        Shape.EarlyExit => certain ? DiagnosticDescriptors.CollectiveAfterEarlyExit : DiagnosticDescriptors.MaybeCollectiveAfterEarlyExit,
        _ => certain ? DiagnosticDescriptors.RankConditionalCollective : DiagnosticDescriptors.MaybeRankConditionalCollective,
    };

    sealed record Finding(Shape Shape, CollectiveSite Site, SyntaxNode Condition, int RegionSize, bool Certain);

    public IEnumerable<Diagnostic> Check(FlowGraph graph, GraphTaint taint)
    {
        var sites = _analysis.Model.GetSites(graph, _cancellationToken);
        var findings = new Dictionary<IOperation, Finding>();
        var summary = graph.Function is null ? null : _analysis.SummaryFor(graph.Function);
        bool anySite = sites.Any(s => s.Count > 0);

        if (anySite)
        {
            for (int c = 0; c < graph.Count; c++)
            {
                ulong condition = taint.Condition[c];
                if (condition == 0 || !graph.IsBranch(c) || !graph.Block(c).IsReachable) continue;
                int stop = graph.ImmediatePostDominator[c];
                var arms = new List<(string? Sequence, HashSet<int> Nodes)>();
                foreach (int s in graph.Successors[c])
                {
                    var sequence = Sequences.Region(graph, sites, s, stop, out var nodes, _analysis.Model.Limits, _analysis.Model.Stats);
                    arms.Add((sequence, nodes));
                }
                var regionSites = new List<(CollectiveSite Site, int Block)>();
                var region = new HashSet<int>();
                foreach (var arm in arms) region.UnionWith(arm.Nodes);
                foreach (int n in region)
                    foreach (var site in sites[n]) regionSites.Add((site, n));
                if (regionSites.Count == 0) continue;
                bool certain = arms.All(a => a.Sequence is not null);
                bool same = certain && arms.All(a => a.Sequence == arms[0].Sequence);
                if (same) continue;

                if ((condition & Taint.Params) != 0 && summary is not null) summary.OrControl(condition & Taint.Params);
                if ((condition & Taint.Rank) == 0) continue;

                var branch = graph.Block(c).BranchValue!;
                var kind = Classify(graph, c, stop, branch.Syntax, out var conditionSyntax, out var exitingArm, _analysis.Model.Known);
                foreach (var (site, block) in regionSites)
                {
                    var shape = kind;
                    // Collectives inside the arm that leaves early are just conditional; the ones after it are skipped.
                    if (shape == Shape.EarlyExit && exitingArm is not null && exitingArm.Span.Contains(site.Operation.Syntax.Span))
                        shape = Shape.Branch;
                    // A loop's arms never have one sequence (they repeat); it certainly deadlocks when the collective runs
                    // on every iteration.
                    bool sure = shape == Shape.Loop ? OnEveryIteration(graph, c, stop, block) : certain;
                    var finding = new Finding(shape, site, conditionSyntax, region.Count, sure && !site.May);
                    if (!findings.TryGetValue(site.Operation, out var old) || old.RegionSize > finding.RegionSize)
                        findings[site.Operation] = finding;
                }
            }
        }

        // Calls whose collectives depend on an argument that is rank-dependent here.
        foreach (var block in sites)
            foreach (var site in block)
            {
                if (site.Operation is not IInvocationOperation invocation) continue;
                var callee = _analysis.TaintSummaryOf(invocation.TargetMethod, _cancellationToken);
                if (callee is null || callee.ControlParams == 0) continue;
                foreach (var argument in invocation.Arguments)
                {
                    if (argument.Parameter is not { } parameter || !Taint.HasParameter(callee.ControlParams, parameter.Ordinal)) continue;
                    if (!taint.Arguments.TryGetValue(argument, out var argumentTaint)) continue;
                    if ((argumentTaint & Taint.Params) != 0 && summary is not null) summary.OrControl(argumentTaint & Taint.Params);
                    if ((argumentTaint & Taint.Rank) != 0 && !findings.ContainsKey(invocation))
                        findings[invocation] = new Finding(Shape.Branch, site, argument.Value.Syntax, int.MaxValue, true);
                }
            }

        foreach (var finding in findings.Values.OrderBy(f => f.Site.Operation.Syntax.SpanStart))
        {
            yield return Diagnostic.Create(Descriptor(finding.Shape, finding.Certain), ReportedSyntax(finding.Site.Operation.Syntax).GetLocation(),
                new[] { finding.Condition.GetLocation() }, finding.Site.Display, Shorten(finding.Condition.ToString()));
        }
    }

    /// <summary>The call itself, or the whole <c>x?.Call()</c> when the call hangs off a conditional access.</summary>
    static SyntaxNode ReportedSyntax(SyntaxNode call)
    {
        while (call.Parent is ConditionalAccessExpressionSyntax access && access.WhenNotNull == call) call = access;
        return call;
    }

    static string Shorten(string text)
    {
        text = string.Join(" ", text.Split(new[] { ' ', '\r', '\n', '\t' }, System.StringSplitOptions.RemoveEmptyEntries));
        return text.Length <= 80 ? text : text.Substring(0, 77) + "...";
    }

    /// <summary>Which rule a tainted branch falls under, and the syntax to show as its condition.</summary>
    static Shape Classify(FlowGraph graph, int branch, int stop, SyntaxNode syntax, out SyntaxNode condition, out SyntaxNode? exitingArm, KnownSymbols known)
    {
        var model = graph.Cfg.OriginalOperation.SemanticModel;
        condition = syntax;
        exitingArm = null;
        // Switch sections and switch-expression arms branch on the governing expression.
        foreach (var ancestor in syntax.AncestorsAndSelf())
        {
            if (ancestor is StatementSyntax && ancestor is not SwitchStatementSyntax) break;
            if (ancestor is SwitchStatementSyntax switchStatement && !switchStatement.Expression.Span.Contains(syntax.Span))
            { condition = switchStatement.Expression; break; }
            if (ancestor is SwitchExpressionSyntax switchExpression && !switchExpression.GoverningExpression.Span.Contains(syntax.Span))
            { condition = switchExpression.GoverningExpression; break; }
        }
        if (syntax is CommonForEachStatementSyntax forEach) { condition = forEach.Expression; return Shape.Loop; }

        StatementSyntax? statement = null;
        foreach (var ancestor in syntax.AncestorsAndSelf())
            if (ancestor is StatementSyntax s) { statement = s; break; }

        switch (statement)
        {
            case IfStatementSyntax ifStatement when ifStatement.Condition.Span.Contains(syntax.Span):
                foreach (var arm in new[] { ifStatement.Statement, ifStatement.Else?.Statement })
                {
                    if (arm is null) continue;
                    var exit = ExitOf(arm, model, known);
                    if (exit == Exit.None) continue;
                    // A goto back to an earlier label is a loop, not an early exit.
                    if (exit == Exit.BackwardGoto) return Shape.Loop;
                    exitingArm = arm;
                    return Shape.EarlyExit;
                }
                break;
            case WhileStatementSyntax w when w.Condition.Span.Contains(syntax.Span):
                return Shape.Loop;
            case DoStatementSyntax d when d.Condition.Span.Contains(syntax.Span):
                return Shape.Loop;
            case ForStatementSyntax f when f.Condition is not null && f.Condition.Span.Contains(syntax.Span):
                return Shape.Loop;
            case CommonForEachStatementSyntax fe:
                condition = fe.Expression;
                return Shape.Loop;
        }
        // A branch that can come back to itself before its paths meet decides how often a loop runs (goto loops).
        if (graph.ReachesItself(branch, stop)) return Shape.Loop;
        return Shape.Branch;
    }

    /// <summary>True when <paramref name="block"/> post-dominates the loop body entered from <paramref name="branch"/>.</summary>
    static bool OnEveryIteration(FlowGraph graph, int branch, int stop, int block)
    {
        foreach (int s in graph.Successors[branch])
            for (int runner = s; runner != stop && runner != branch && runner >= 0; runner = graph.ImmediatePostDominator[runner])
                if (runner == block) return true;
        return false;
    }

    enum Exit { None, Leaves, BackwardGoto }

    /// <summary>Whether a statement always leaves: return, break, continue, goto, throw, or a call that never returns.</summary>
    static Exit ExitOf(StatementSyntax statement, SemanticModel? model, KnownSymbols known)
    {
        while (statement is BlockSyntax block)
        {
            if (block.Statements.Count == 0) return Exit.None;
            statement = block.Statements[block.Statements.Count - 1];
        }
        switch (statement)
        {
            case ReturnStatementSyntax or BreakStatementSyntax or ContinueStatementSyntax or ThrowStatementSyntax:
                return Exit.Leaves;
            case YieldStatementSyntax y:
                return y.IsKind(SyntaxKind.YieldBreakStatement) ? Exit.Leaves : Exit.None;
            case GotoStatementSyntax { Expression: IdentifierNameSyntax label } jump:
            {
                var body = jump.Ancestors().FirstOrDefault(a => a is BaseMethodDeclarationSyntax or LocalFunctionStatementSyntax
                    or AnonymousFunctionExpressionSyntax or AccessorDeclarationSyntax or CompilationUnitSyntax);
                var target = body?.DescendantNodes().OfType<LabeledStatementSyntax>()
                    .FirstOrDefault(l => l.Identifier.ValueText == label.Identifier.ValueText);
                return target is not null && target.SpanStart < jump.SpanStart ? Exit.BackwardGoto : Exit.Leaves;
            }
            case GotoStatementSyntax:
                return Exit.Leaves;
            case ExpressionStatementSyntax { Expression: ThrowExpressionSyntax }:
                return Exit.Leaves;
            case ExpressionStatementSyntax { Expression: InvocationExpressionSyntax invocation }:
                return model?.GetSymbolInfo(invocation).Symbol is IMethodSymbol method && known.IsNoReturn(method) ? Exit.Leaves : Exit.None;
            default:
                return Exit.None;
        }
    }
}
