using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// A syntactic pre-filter, so that bodies that cannot reach a collective are never bound nor turned into graphs: the
/// names through which a call can lead to one, gathered once per compilation from declarations only. A body reaches a
/// collective only through a call, and every call names its target in the syntax (a method, property, event,
/// delegate-typed field or type), except the calls that foreach, using, await, initializers, deconstruction, queries,
/// interpolation handlers, element access and constructor chaining make implicitly; those count when the compilation
/// declares a member they could call. The names: every method, property, event, delegate-typed field and type
/// declared in source (any of them may perform collectives), every member marked <c>[Collective]</c> in a referenced
/// assembly that can see VectorLm's attributes, and <c>step</c> (a TorchSharp optimizer's step in a trainer).
/// </summary>
internal sealed class CollectiveNames
{
    // Members that a construct calls without naming them (foreach, using, await, collection initializers and
    // expressions, deconstruction, LINQ query syntax, interpolated string handlers, ranges and indices, fixed).
    static readonly HashSet<string> ImplicitlyCalled = new(StringComparer.Ordinal)
    {
        "GetEnumerator", "GetAsyncEnumerator", "MoveNext", "MoveNextAsync", "Current", "Dispose", "DisposeAsync",
        "GetAwaiter", "GetResult", "IsCompleted", "Add", "Deconstruct", "Select", "SelectMany", "Where", "Join",
        "GroupJoin", "OrderBy", "OrderByDescending", "ThenBy", "ThenByDescending", "GroupBy", "Cast",
        "AppendLiteral", "AppendFormatted", "Slice", "Length", "Count", "GetPinnableReference", "Create",
    };

    readonly HashSet<string> _names = new(StringComparer.Ordinal) { "step" };
    readonly bool _implicitCalls;
    readonly bool _indexers;
    readonly ConcurrentDictionary<ISymbol, bool> _members = new(SymbolEqualityComparer.Default);

    public CollectiveNames(Compilation compilation, KnownSymbols known, CancellationToken cancellationToken)
    {
        foreach (var type in Dispatch.SourceTypes(compilation.Assembly.GlobalNamespace))
        {
            _names.Add(type.Name);
            foreach (var member in type.GetMembers())
            {
                switch (member)
                {
                    case IPropertySymbol { IsIndexer: true }:
                        _indexers = true;
                        break;
                    case IMethodSymbol or IPropertySymbol or IEventSymbol:
                        // An explicit implementation (IHook.Run) is called by its simple name.
                        _names.Add(member.Name.Substring(member.Name.LastIndexOf('.') + 1));
                        break;
                    case IFieldSymbol { Type.TypeKind: TypeKind.Delegate }:
                        _names.Add(member.Name);
                        break;
                }
            }
        }
        _implicitCalls = _names.Overlaps(ImplicitlyCalled);

        var attributeHolders = new HashSet<IAssemblySymbol>(SymbolEqualityComparer.Default);
        var assemblies = new List<IAssemblySymbol>();
        foreach (var reference in compilation.References)
            if (compilation.GetAssemblyOrModuleSymbol(reference) is IAssemblySymbol assembly)
            {
                assemblies.Add(assembly);
                if (assembly.GetTypeByMetadataName(CollectiveDeadlockAnalyzer.CollectiveAttributeName) is not null) attributeHolders.Add(assembly);
            }
        foreach (var assembly in assemblies)
            if (SeesAttribute(assembly, attributeHolders))
                AddCollectives(assembly.GlobalNamespace, known, cancellationToken);
    }

    /// <summary>False when no body of <paramref name="member"/> can reach a collective, decided from its syntax alone.</summary>
    public bool MayReach(ISymbol member, CancellationToken cancellationToken) =>
        _members.GetOrAdd(member.OriginalDefinition, m =>
        {
            if (m is IMethodSymbol { PartialImplementationPart: { } implementation }) m = implementation;
            // Constructor chaining: an explicit or implicit base(...) call of a source base class.
            if (m is IMethodSymbol { MethodKind: MethodKind.Constructor } constructor
                && constructor.ContainingType.BaseType is { DeclaringSyntaxReferences.Length: > 0 })
                return true;
            foreach (var reference in m.DeclaringSyntaxReferences)
                foreach (var node in reference.GetSyntax(cancellationToken).DescendantNodesAndSelf())
                    if (MayCall(node)) return true;
            return false;
        });

    bool MayCall(SyntaxNode node) => node switch
    {
        SimpleNameSyntax name => _names.Contains(name.Identifier.ValueText),
        ImplicitObjectCreationExpressionSyntax or ConstructorInitializerSyntax => true,
        ElementAccessExpressionSyntax or ElementBindingExpressionSyntax or ImplicitElementAccessSyntax => _indexers || _implicitCalls,
        CommonForEachStatementSyntax or UsingStatementSyntax or AwaitExpressionSyntax or InitializerExpressionSyntax
            or QueryExpressionSyntax or InterpolatedStringExpressionSyntax or DeclarationExpressionSyntax
            or TupleExpressionSyntax or CollectionExpressionSyntax or FixedStatementSyntax => _implicitCalls,
        LocalDeclarationStatementSyntax declaration => _implicitCalls && declaration.UsingKeyword.IsKind(SyntaxKind.UsingKeyword),
        _ => false,
    };

    // An assembly whose members may carry [Collective]: it declares the attribute or references one that does.
    static bool SeesAttribute(IAssemblySymbol assembly, HashSet<IAssemblySymbol> holders)
    {
        if (holders.Contains(assembly)) return true;
        foreach (var module in assembly.Modules)
            foreach (var referenced in module.ReferencedAssemblySymbols)
                if (holders.Contains(referenced)) return true;
        return false;
    }

    void AddCollectives(INamespaceSymbol ns, KnownSymbols known, CancellationToken cancellationToken)
    {
        foreach (var member in ns.GetMembers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (member is INamespaceSymbol inner) AddCollectives(inner, known, cancellationToken);
            else if (member is INamedTypeSymbol type) AddCollectives(type, known);
        }
    }

    void AddCollectives(INamedTypeSymbol type, KnownSymbols known)
    {
        foreach (var member in type.GetMembers())
        {
            if (member is INamedTypeSymbol nested) { AddCollectives(nested, known); continue; }
            if (member is not IMethodSymbol method || !known.IsCollective(method)) continue;
            _names.Add(method.MethodKind switch
            {
                MethodKind.Constructor => type.Name,
                MethodKind.PropertyGet or MethodKind.PropertySet => method.AssociatedSymbol!.Name,
                _ => method.Name,
            });
        }
    }
}
