using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Whether a method body may write state that outlives the call (a field, a property, an element or a collection
/// reached through one, a ref or out argument), decided from syntax: a target is the method's own when it is a bare
/// name that is no field, property or event of the type, its base types or the types around it. Anything else (a member
/// access, an element of something not local, a call on a field, a <c>using static</c> file) counts as a write.
/// </summary>
internal static class StateWrites
{
    /// <summary>False when no statement of <paramref name="method"/> can write a field, a property or a caller's variable.</summary>
    /// <remarks><paramref name="globalUsingStatic"/>: the compilation has a <c>global using static</c> (see <see cref="HasGlobalUsingStatic"/>).</remarks>
    public static bool MayWrite(IMethodSymbol method, bool globalUsingStatic, CancellationToken cancellationToken)
    {
        if (globalUsingStatic) return true;
        HashSet<string>? members = null;
        foreach (var reference in method.DeclaringSyntaxReferences)
        {
            var root = reference.GetSyntax(cancellationToken);
            if (root.SyntaxTree.GetRoot(cancellationToken) is CompilationUnitSyntax unit
                && (unit.Usings.Any(u => u.StaticKeyword.IsKind(SyntaxKind.StaticKeyword))
                    || unit.DescendantNodes(n => n is not TypeDeclarationSyntax).OfType<UsingDirectiveSyntax>().Any(u => u.StaticKeyword.IsKind(SyntaxKind.StaticKeyword))))
                return true;
            members ??= MemberNames(method.ContainingType);
            foreach (var node in root.DescendantNodesAndSelf())
            {
                bool writes = node switch
                {
                    AssignmentExpressionSyntax assignment => !IsOwn(assignment.Left, members),
                    PrefixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.PreIncrementExpression or (int)SyntaxKind.PreDecrementExpression } prefix
                        => !IsOwn(prefix.Operand, members),
                    PostfixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.PostIncrementExpression or (int)SyntaxKind.PostDecrementExpression } postfix
                        => !IsOwn(postfix.Operand, members),
                    ArgumentSyntax { RefKindKeyword.RawKind: (int)SyntaxKind.RefKeyword or (int)SyntaxKind.OutKeyword } argument
                        => !IsOwn(argument.Expression, members),
                    // A call on something that may be a field may fill it (a collection) or change it.
                    InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax access } => !IsOwnReceiver(access.Expression, members),
                    InvocationExpressionSyntax { Expression: MemberBindingExpressionSyntax } => true,
                    RefExpressionSyntax => true,
                    _ => false,
                };
                if (writes) return true;
            }
        }
        return false;
    }

    /// <summary>True when a file has <c>global using static</c>, which brings other types' members into every file's scope.</summary>
    public static bool HasGlobalUsingStatic(Compilation compilation, CancellationToken cancellationToken)
    {
        foreach (var tree in compilation.SyntaxTrees)
            if (tree.GetRoot(cancellationToken) is CompilationUnitSyntax unit
                && unit.Usings.Any(u => u.GlobalKeyword.IsKind(SyntaxKind.GlobalKeyword) && u.StaticKeyword.IsKind(SyntaxKind.StaticKeyword)))
                return true;
        return false;
    }

    // A variable of the method itself: a bare name that no member of the type (or around it) has, a declaration, a discard.
    static bool IsOwn(ExpressionSyntax target, HashSet<string> members) => target switch
    {
        IdentifierNameSyntax name => !members.Contains(name.Identifier.ValueText),
        DeclarationExpressionSyntax => true,
        ParenthesizedExpressionSyntax parenthesized => IsOwn(parenthesized.Expression, members),
        TupleExpressionSyntax tuple => tuple.Arguments.All(a => IsOwn(a.Expression, members)),
        ElementAccessExpressionSyntax element => IsOwn(element.Expression, members),
        _ => false,
    };

    // A receiver whose methods cannot change state of the type: a local, a parameter, a type name.
    static bool IsOwnReceiver(ExpressionSyntax receiver, HashSet<string> members) => receiver switch
    {
        IdentifierNameSyntax or GenericNameSyntax => !members.Contains(((SimpleNameSyntax)receiver).Identifier.ValueText),
        PredefinedTypeSyntax => true,
        _ => false,
    };

    // Names of the fields, properties and events the method can name without qualification.
    static HashSet<string> MemberNames(INamedTypeSymbol? type)
    {
        var names = new HashSet<string>(System.StringComparer.Ordinal);
        for (var outer = type; outer is not null; outer = outer.ContainingType)
            for (var t = outer; t is not null; t = t.BaseType)
                foreach (var member in t.GetMembers())
                    if (member is IFieldSymbol or IPropertySymbol or IEventSymbol) names.Add(member.Name);
        return names;
    }
}
