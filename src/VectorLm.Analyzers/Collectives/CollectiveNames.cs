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
/// names through which a call can lead to one, closed over the compilation's own members once per compilation, from
/// syntax only. A body reaches a collective only through a call, and every call names its target in the syntax (a
/// method, property, event, delegate-typed field or type), except the calls that foreach, using, await, initializers,
/// deconstruction, queries, interpolation handlers, element access and constructor chaining make implicitly; those
/// count through stand-in names (<see cref="ImplicitCall"/>, <see cref="AnyConstructor"/>, <see cref="Indexer"/>).
/// The seeds: every member marked <c>[Collective]</c> (in source, or in a referenced assembly that can see VectorLm's
/// attributes), <c>step</c> (a TorchSharp optimizer's step in a trainer) and every delegate-typed field, property and
/// event declared in source (what they run is assigned elsewhere). Then a source member whose syntax names a reaching
/// name reaches too, and its name joins them, until nothing changes: a helper that only calls other helpers that reach
/// nothing is never bound.
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

    // Stand-in names (not valid identifiers) for calls the syntax does not name.
    const string ImplicitCall = "<implicit call>";
    const string AnyConstructor = "<constructor>";
    const string Indexer = "<indexer>";

    readonly HashSet<string> _reaching = new(StringComparer.Ordinal);
    readonly Dictionary<ISymbol, bool> _sourceMembers = new(SymbolEqualityComparer.Default);
    readonly HashSet<ISymbol> _callsSource = new(SymbolEqualityComparer.Default);
    readonly ConcurrentDictionary<ISymbol, bool> _others = new(SymbolEqualityComparer.Default);

    public CollectiveNames(Compilation compilation, KnownSymbols known, CancellationToken cancellationToken)
    {
        var seeds = new List<string> { "step" };
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
                AddCollectives(assembly.GlobalNamespace, known, seeds, cancellationToken);

        // Each source member: the names it exports when it reaches, and the names its syntax mentions.
        var exports = new Dictionary<ISymbol, string[]>(SymbolEqualityComparer.Default);
        var mentionedBy = new Dictionary<string, List<ISymbol>>(StringComparer.Ordinal);
        foreach (var type in Dispatch.SourceTypes(compilation.Assembly.GlobalNamespace))
            foreach (var member in type.GetMembers())
            {
                cancellationToken.ThrowIfCancellationRequested();
                var key = Key(member);
                if (_sourceMembers.ContainsKey(key)) continue;
                _sourceMembers.Add(key, false);
                // Members the compiler declares (record equality, default constructors) have no body to analyse.
                if (member.IsImplicitlyDeclared) continue;
                var names = Exports(member);
                exports.Add(key, names);
                if (member is IFieldSymbol { Type.TypeKind: TypeKind.Delegate } or IPropertySymbol { Type.TypeKind: TypeKind.Delegate }
                    or IEventSymbol || (member is IMethodSymbol method && known.IsCollective(method)))
                    seeds.AddRange(names);
                foreach (var name in Mentions(key, cancellationToken))
                {
                    if (!mentionedBy.TryGetValue(name, out var list)) mentionedBy.Add(name, list = new List<ISymbol>());
                    list.Add(key);
                }
            }

        // Members that call a source member (by name, or through a construct whose stand-in a source member exports).
        var sourceNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var names in exports.Values) sourceNames.UnionWith(names);
        if (sourceNames.Overlaps(ImplicitlyCalled)) sourceNames.Add(ImplicitCall);
        foreach (var name in sourceNames)
            if (mentionedBy.TryGetValue(name, out var callers))
                foreach (var caller in callers) _callsSource.Add(caller);

        // The closure: a worklist of names that became reaching.
        var work = new Stack<string>();
        void Reach(string name)
        {
            if (!_reaching.Add(name)) return;
            work.Push(name);
            if (ImplicitlyCalled.Contains(name)) Reach(ImplicitCall);
        }
        foreach (var seed in seeds) Reach(seed);
        while (work.Count > 0)
        {
            if (!mentionedBy.TryGetValue(work.Pop(), out var members)) continue;
            foreach (var member in members)
            {
                if (_sourceMembers[member]) continue;
                _sourceMembers[member] = true;
                foreach (var name in exports[member]) Reach(name);
            }
        }
    }

    /// <summary>
    /// False when the syntax of <paramref name="member"/> calls no method, property or constructor declared in source
    /// (then only its own statements can write class-wide state); true when unsure.
    /// </summary>
    public bool MayCallSource(ISymbol member) => !_sourceMembers.ContainsKey(Key(member)) || _callsSource.Contains(Key(member));

    /// <summary>True when a call through <paramref name="name"/> (a method, property, event, field or type name) may reach a collective.</summary>
    public bool IsCallName(string name) => _reaching.Contains(name);

    /// <summary>False when no body of <paramref name="member"/> can reach a collective, decided from syntax alone.</summary>
    public bool MayReach(ISymbol member, CancellationToken cancellationToken)
    {
        var key = Key(member);
        if (_sourceMembers.TryGetValue(key, out var reaches)) return reaches;
        // Not a member of a source type (top-level code, a symbol of another compilation): its own syntax decides.
        return _others.GetOrAdd(key, m =>
        {
            foreach (var name in Mentions(m, cancellationToken))
                if (_reaching.Contains(name)) return true;
            return false;
        });
    }

    static ISymbol Key(ISymbol member)
    {
        member = member.OriginalDefinition;
        return member is IMethodSymbol { PartialImplementationPart: { } implementation } ? implementation : member;
    }

    // The names a call of this member is written with (none for a field that holds no delegate: reading it calls nothing).
    static string[] Exports(ISymbol member) => member switch
    {
        IFieldSymbol { Type.TypeKind: not TypeKind.Delegate } => [],
        IMethodSymbol { MethodKind: MethodKind.Constructor } constructor => [constructor.ContainingType.Name, AnyConstructor],
        IMethodSymbol { MethodKind: MethodKind.StaticConstructor or MethodKind.Destructor } => [],
        IMethodSymbol { AssociatedSymbol: IPropertySymbol { IsIndexer: true } } or IPropertySymbol { IsIndexer: true } => [Indexer],
        IMethodSymbol { AssociatedSymbol: { } associated } => [SimpleName(associated.Name)],
        _ => [SimpleName(member.Name)],
    };

    // An explicit implementation (IHook.Run) is called by its simple name.
    static string SimpleName(string name) => name.Substring(name.LastIndexOf('.') + 1);

    // Every name the member's syntax mentions that a call could go through, stand-ins included.
    static HashSet<string> Mentions(ISymbol member, CancellationToken cancellationToken)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        // Constructor chaining: an implicit base() call of a source base class.
        if (member is IMethodSymbol { MethodKind: MethodKind.Constructor } constructor
            && constructor.ContainingType.BaseType is { DeclaringSyntaxReferences.Length: > 0 } baseType)
            names.Add(baseType.Name);
        foreach (var reference in member.DeclaringSyntaxReferences)
            foreach (var node in reference.GetSyntax(cancellationToken).DescendantNodesAndSelf())
                switch (node)
                {
                    case SimpleNameSyntax name:
                        names.Add(name.Identifier.ValueText);
                        break;
                    case ImplicitObjectCreationExpressionSyntax or ConstructorInitializerSyntax:
                        names.Add(AnyConstructor);
                        break;
                    case ElementAccessExpressionSyntax or ElementBindingExpressionSyntax or ImplicitElementAccessSyntax:
                        names.Add(Indexer);
                        names.Add(ImplicitCall);
                        break;
                    case CommonForEachStatementSyntax or UsingStatementSyntax or AwaitExpressionSyntax or InitializerExpressionSyntax
                        or QueryExpressionSyntax or InterpolatedStringExpressionSyntax or DeclarationExpressionSyntax
                        or TupleExpressionSyntax or CollectionExpressionSyntax or FixedStatementSyntax:
                        names.Add(ImplicitCall);
                        break;
                    case LocalDeclarationStatementSyntax declaration when declaration.UsingKeyword.IsKind(SyntaxKind.UsingKeyword):
                        names.Add(ImplicitCall);
                        break;
                }
        return names;
    }

    // An assembly whose members may carry [Collective]: it declares the attribute or references one that does.
    static bool SeesAttribute(IAssemblySymbol assembly, HashSet<IAssemblySymbol> holders)
    {
        if (holders.Contains(assembly)) return true;
        foreach (var module in assembly.Modules)
            foreach (var referenced in module.ReferencedAssemblySymbols)
                if (holders.Contains(referenced)) return true;
        return false;
    }

    static void AddCollectives(INamespaceSymbol ns, KnownSymbols known, List<string> seeds, CancellationToken cancellationToken)
    {
        foreach (var member in ns.GetMembers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (member is INamespaceSymbol inner) AddCollectives(inner, known, seeds, cancellationToken);
            else if (member is INamedTypeSymbol type) AddCollectives(type, known, seeds);
        }
    }

    static void AddCollectives(INamedTypeSymbol type, KnownSymbols known, List<string> seeds)
    {
        foreach (var member in type.GetMembers())
        {
            if (member is INamedTypeSymbol nested) { AddCollectives(nested, known, seeds); continue; }
            if (member is IMethodSymbol method && known.IsCollective(method)) seeds.AddRange(Exports(method));
        }
    }
}
