using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// What a call may run when the code does not name one body: the implementations and overrides of an interface or
/// virtual member in this compilation, and the functions assigned to a delegate-typed field, property or event. Built
/// on demand, once per compilation.
/// </summary>
internal sealed class Dispatch
{
    readonly Compilation _compilation;
    readonly AnalysisLimits _limits;
    readonly object _gate = new();
    Dictionary<IMethodSymbol, List<IMethodSymbol>>? _implementations;
    readonly ConcurrentDictionary<ISymbol, List<IMethodSymbol>> _assigned = new(SymbolEqualityComparer.Default);

    public Dispatch(Compilation compilation, AnalysisLimits limits)
    {
        _compilation = compilation;
        _limits = limits;
    }

    /// <summary>A call through an interface or a virtual member (not a base call, not a static or sealed target).</summary>
    public static bool IsDispatched(IInvocationOperation invocation) =>
        invocation.IsVirtual && invocation.Instance is not null
        && invocation.TargetMethod is { IsStatic: false, IsSealed: false, MethodKind: MethodKind.Ordinary or MethodKind.PropertyGet or MethodKind.PropertySet }
        && (invocation.TargetMethod.IsAbstract || invocation.TargetMethod.IsVirtual || invocation.TargetMethod.IsOverride
            || invocation.TargetMethod.ContainingType.TypeKind == TypeKind.Interface);

    /// <summary>The bodies a dispatched call may run: the member itself if it has one here, and the implementations and overrides in types that derive from the receiver's type.</summary>
    public List<IMethodSymbol> TargetsOf(IInvocationOperation invocation, out bool gaveUp)
    {
        gaveUp = false;
        var method = invocation.TargetMethod.OriginalDefinition;
        var receiver = invocation.Instance?.Type?.OriginalDefinition;
        var targets = new List<IMethodSymbol>();
        if (!method.IsAbstract && method.DeclaringSyntaxReferences.Length > 0) targets.Add(method);
        if (Implementations().TryGetValue(method, out var implementations))
            foreach (var implementation in implementations)
                if (receiver is null || DerivesFrom(implementation.ContainingType, receiver)) targets.Add(implementation);
        // More possible targets than the limit: the call is given up on (counted in AnalysisStats).
        if (targets.Count > _limits.DispatchTargets)
        {
            gaveUp = true;
            targets.Clear();
        }
        return targets;
    }

    static bool DerivesFrom(INamedTypeSymbol type, ITypeSymbol receiver)
    {
        for (var t = type; t is not null; t = t.BaseType)
            if (SymbolEqualityComparer.Default.Equals(t.OriginalDefinition, receiver)) return true;
        foreach (var itf in type.AllInterfaces)
            if (SymbolEqualityComparer.Default.Equals(itf.OriginalDefinition, receiver)) return true;
        return false;
    }

    Dictionary<IMethodSymbol, List<IMethodSymbol>> Implementations()
    {
        lock (_gate) return _implementations ??= BuildImplementations();
    }

    // Every source method that overrides a member, or implements an interface member, indexed by that member.
    Dictionary<IMethodSymbol, List<IMethodSymbol>> BuildImplementations()
    {
        var index = new Dictionary<IMethodSymbol, List<IMethodSymbol>>(SymbolEqualityComparer.Default);
        void Add(IMethodSymbol member, IMethodSymbol implementation)
        {
            member = member.OriginalDefinition;
            implementation = implementation.OriginalDefinition;
            if (SymbolEqualityComparer.Default.Equals(member, implementation) || implementation.DeclaringSyntaxReferences.Length == 0) return;
            if (!index.TryGetValue(member, out var list)) index[member] = list = new List<IMethodSymbol>();
            if (!list.Contains(implementation, SymbolEqualityComparer.Default)) list.Add(implementation);
        }
        foreach (var type in SourceTypes(_compilation.Assembly.GlobalNamespace))
        {
            foreach (var member in type.GetMembers())
                if (member is IMethodSymbol method)
                    for (var overridden = method.OverriddenMethod; overridden is not null; overridden = overridden.OverriddenMethod)
                        Add(overridden, method);
            foreach (var itf in type.AllInterfaces)
                foreach (var member in itf.GetMembers())
                    if (member is IMethodSymbol { IsStatic: false } itfMethod
                        && type.FindImplementationForInterfaceMember(itfMethod) is IMethodSymbol implementation)
                        Add(itfMethod, implementation);
        }
        return index;
    }

    /// <summary>Every type declared in <paramref name="ns"/> and below it, nested types included.</summary>
    internal static IEnumerable<INamedTypeSymbol> SourceTypes(INamespaceSymbol ns)
    {
        foreach (var member in ns.GetMembers())
        {
            if (member is INamespaceSymbol inner)
            {
                foreach (var type in SourceTypes(inner)) yield return type;
            }
            else if (member is INamedTypeSymbol type)
            {
                foreach (var nested in SelfAndNested(type)) yield return nested;
            }
        }
    }

    static IEnumerable<INamedTypeSymbol> SelfAndNested(INamedTypeSymbol type)
    {
        yield return type;
        foreach (var nested in type.GetTypeMembers())
            foreach (var t in SelfAndNested(nested)) yield return t;
    }

    /// <summary>
    /// The lambdas, local functions and methods assigned (<c>=</c>, <c>+=</c>, initializers) to a delegate-typed field,
    /// property or event anywhere it can be assigned: its type's files for a private member, every file otherwise.
    /// Names are matched in syntax first, so only candidate assignments are bound.
    /// </summary>
    public List<IMethodSymbol> AssignedTo(ISymbol member, CancellationToken cancellationToken) =>
        _assigned.GetOrAdd(member.OriginalDefinition, m =>
        {
            var found = new List<IMethodSymbol>();
            var trees = m.DeclaredAccessibility == Accessibility.Private && m.ContainingType is { } owner
                ? owner.DeclaringSyntaxReferences.Select(r => r.SyntaxTree).Distinct()
                : _compilation.SyntaxTrees;
            foreach (var tree in trees)
            {
                SemanticModel? model = null;
                foreach (var node in tree.GetRoot(cancellationToken).DescendantNodes())
                {
                    SyntaxNode? value = node switch
                    {
                        AssignmentExpressionSyntax a when RightmostName(a.Left) == m.Name => a,
                        VariableDeclaratorSyntax { Initializer: { } init } d when d.Identifier.ValueText == m.Name => init,
                        PropertyDeclarationSyntax { Initializer: { } init } p when p.Identifier.ValueText == m.Name => init,
                        _ => null,
                    };
                    if (value is null) continue;
#pragma warning disable RS1030 // Delegate targets live in other members' bodies; under the compiler this model comes from its shared cache.
                    model ??= _compilation.GetSemanticModel(tree);
#pragma warning restore RS1030
                    var (target, assigned) = model.GetOperation(value, cancellationToken) switch
                    {
                        IEventAssignmentOperation { EventReference: IEventReferenceOperation e } ea => ((ISymbol?)e.Event, ea.HandlerValue),
                        IAssignmentOperation { Target: var t } assignment => (SymbolOf(t), assignment.Value),
                        ISymbolInitializerOperation init => (SymbolOfInitializer(init), init.Value),
                        _ => (null, null),
                    };
                    if (target is null || !SymbolEqualityComparer.Default.Equals(target.OriginalDefinition, m)) continue;
                    if (CollectiveModel.FunctionOf(assigned) is { } function && !found.Contains(function, SymbolEqualityComparer.Default))
                        found.Add(function);
                }
            }
            return found;
        });

    static string? RightmostName(ExpressionSyntax left) => left switch
    {
        IdentifierNameSyntax i => i.Identifier.ValueText,
        MemberAccessExpressionSyntax m => m.Name.Identifier.ValueText,
        MemberBindingExpressionSyntax b => b.Name.Identifier.ValueText,
        _ => null,
    };

    static ISymbol? SymbolOf(IOperation target) => target switch
    {
        IFieldReferenceOperation f => f.Field,
        IPropertyReferenceOperation p => p.Property,
        IEventReferenceOperation e => e.Event,
        _ => null,
    };

    static ISymbol? SymbolOfInitializer(ISymbolInitializerOperation init) => init switch
    {
        IFieldInitializerOperation f when f.InitializedFields.Length == 1 => f.InitializedFields[0].AssociatedSymbol ?? f.InitializedFields[0],
        IPropertyInitializerOperation p when p.InitializedProperties.Length == 1 => p.InitializedProperties[0],
        _ => null,
    };
}
