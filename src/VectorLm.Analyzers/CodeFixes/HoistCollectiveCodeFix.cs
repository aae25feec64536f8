using System.Collections.Generic;
using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace VectorLm.Analyzers.CodeFixes;

/// <summary>
/// VLM1001 fix: moves a collective statement (<c>ctx.Barrier();</c>, <c>x = sampler.Generate(p);</c>) out of the
/// <c>if</c> that only some ranks enter, to just before it, so every rank calls it. The <c>if</c> goes away when
/// nothing else is left in it. Fix-all hoists every flagged statement of a document in one pass.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(HoistCollectiveCodeFix)), Shared]
public sealed class HoistCollectiveCodeFix : CodeFixProvider
{
    const string Title = "Call the collective on every rank (move it before the 'if')";

    /// <inheritdoc />
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(DiagnosticDescriptors.RankConditionalCollective.Id);

    /// <inheritdoc />
    public override FixAllProvider GetFixAllProvider() => FixAllProvider.Create(async (context, document, diagnostics) =>
    {
        var root = await document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null || model is null) return document;
        var statements = diagnostics
            .Select(d => Hoistable(root, model, d, context.CancellationToken))
            .Where(s => s is not null)
            .Select(s => s!)
            .Distinct()
            .ToList();
        return statements.Count == 0 ? document : document.WithSyntaxRoot(Hoist(root, statements));
    });

    /// <inheritdoc />
    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        var model = await context.Document.GetSemanticModelAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null || model is null) return;
        foreach (var diagnostic in context.Diagnostics)
        {
            var statement = Hoistable(root, model, diagnostic, context.CancellationToken);
            if (statement is null) continue;
            var document = context.Document;
            context.RegisterCodeFix(
                CodeAction.Create(Title, _ => Task.FromResult(document.WithSyntaxRoot(Hoist(root, new[] { statement }))), equivalenceKey: Title),
                diagnostic);
        }
    }

    /// <summary>The statement to hoist for a diagnostic, or null when this fix does not apply.</summary>
    static ExpressionStatementSyntax? Hoistable(SyntaxNode root, SemanticModel model, Diagnostic diagnostic, CancellationToken cancellationToken)
    {
        var node = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true);
        var invocation = node.AncestorsAndSelf().OfType<InvocationExpressionSyntax>().FirstOrDefault();
        if (invocation?.Parent is not { } parent) return null;
        if (parent is AwaitExpressionSyntax awaited) parent = awaited.Parent!;
        if (parent is AssignmentExpressionSyntax { Parent: ExpressionStatementSyntax } assignment
            && assignment.IsKind(SyntaxKind.SimpleAssignmentExpression))
            parent = assignment.Parent!;
        if (parent is not ExpressionStatementSyntax statement) return null;

        var ifStatement = EnclosingIf(statement);
        if (ifStatement?.Parent is not BlockSyntax) return null;
        // `if (c) x; else y;` would need the condition negated; leave it to the user.
        if (ifStatement.Statement == statement && ifStatement.Else is not null) return null;

        // Locals declared inside the if cannot be used before it.
        foreach (var identifier in statement.DescendantNodes().OfType<IdentifierNameSyntax>())
        {
            if (model.GetSymbolInfo(identifier, cancellationToken).Symbol is ILocalSymbol local
                && local.DeclaringSyntaxReferences.Any(r => ifStatement.Statement.Span.Contains(r.Span)))
                return null;
        }
        return statement;
    }

    /// <summary>The if whose then-branch directly holds the statement (alone or in its block).</summary>
    static IfStatementSyntax? EnclosingIf(StatementSyntax statement) => statement.Parent switch
    {
        IfStatementSyntax direct when direct.Statement == statement => direct,
        BlockSyntax { Parent: IfStatementSyntax viaBlock } block when viaBlock.Statement == block => viaBlock,
        _ => null,
    };

    static SyntaxNode Hoist(SyntaxNode root, IReadOnlyCollection<ExpressionStatementSyntax> statements)
    {
        var byIf = statements.GroupBy(s => EnclosingIf(s)!).ToList();
        var tracked = root.TrackNodes(byIf.Select(g => (SyntaxNode)g.Key));
        foreach (var group in byIf)
        {
            var ifStatement = tracked.GetCurrentNode(group.Key)!;
            var moved = group.OrderBy(s => s.SpanStart).ToList();
            var indentation = ifStatement.GetLeadingTrivia();
            var hoisted = moved.Select(s => s.WithoutTrivia().WithLeadingTrivia(indentation).WithTrailingTrivia(SyntaxFactory.ElasticCarriageReturnLineFeed))
                .Select(s => s.WithTrailingTrivia(EndOfLine(root)))
                .ToList<SyntaxNode>();

            // What remains of the if after taking the statements out.
            StatementSyntax? remaining;
            if (ifStatement.Statement is BlockSyntax block)
            {
                var kept = block.Statements.Where(s => !moved.Any(m => m.IsEquivalentTo(s) && SameSpan(block, s, m))).ToList();
                remaining = kept.Count == 0 && ifStatement.Else is null ? null : ifStatement.WithStatement(block.WithStatements(SyntaxFactory.List(kept)));
            }
            else
            {
                remaining = null;
            }

            if (remaining is null)
            {
                // Nothing left: the statements replace the if, which keeps its trailing comments.
                hoisted[hoisted.Count - 1] = hoisted[hoisted.Count - 1].WithTrailingTrivia(ifStatement.GetTrailingTrivia());
                tracked = tracked.ReplaceNode(ifStatement, hoisted);
            }
            else
            {
                tracked = tracked.ReplaceNode(ifStatement, hoisted.Append(remaining));
            }
        }
        return tracked;
    }

    static bool SameSpan(BlockSyntax currentBlock, StatementSyntax current, StatementSyntax original) =>
        current.Span.Start - currentBlock.Span.Start == original.Span.Start - ((BlockSyntax)original.Parent!).Span.Start;

    static SyntaxTrivia EndOfLine(SyntaxNode root) =>
        root.DescendantTrivia().FirstOrDefault(t => t.IsKind(SyntaxKind.EndOfLineTrivia)) is { } eol && eol.IsKind(SyntaxKind.EndOfLineTrivia)
            ? eol
            : SyntaxFactory.CarriageReturnLineFeed;
}
