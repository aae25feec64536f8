using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.TrainerShape;

/// <summary>
/// Reports <c>[DistributedTrainer]</c> classes and <c>[Option]</c> properties the source generator cannot use
/// (VLM0001 to VLM0008). The generator itself reports nothing and skips these trainers; the rules are shared
/// (<see cref="TrainerShapeRules"/>), so the two always agree.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class TrainerShapeAnalyzer : DiagnosticAnalyzer
{
    /// <inheritdoc />
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(
        DiagnosticDescriptors.TrainerNotPartial,
        DiagnosticDescriptors.TrainMethod,
        DiagnosticDescriptors.OptionNotSettable,
        DiagnosticDescriptors.OptionTypeUnsupported,
        DiagnosticDescriptors.TrainerClassShape,
        DiagnosticDescriptors.AmbiguousTrainer,
        DiagnosticDescriptors.OptionNameConflict,
        DiagnosticDescriptors.UnknownTrainerChoice,
        DiagnosticDescriptors.CollectiveNotIntercepted);

    /// <inheritdoc />
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var attribute = start.Compilation.GetTypeByMetadataName(TrainerShapeRules.DistributedTrainerAttribute);
            if (attribute is null) return;
            var trainers = new ConcurrentBag<INamedTypeSymbol>();
            start.RegisterSymbolAction(symbolContext =>
            {
                var type = (INamedTypeSymbol)symbolContext.Symbol;
                if (!type.GetAttributes().Any(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, attribute))) return;
                trainers.Add(type);
                AnalyzeTrainer(symbolContext, type);
            }, SymbolKind.NamedType);
            start.RegisterCompilationEndAction(end => AnalyzeProject(end, trainers.ToArray()));
            // Syntax-node actions with a name filter, not operation actions: an operation action makes the driver bind
            // every body of the project; these bind only the bodies that name step, Generate or a clip (or reflect).
            start.RegisterSyntaxNodeAction(AnalyzeInvocation, SyntaxKind.InvocationExpression);
            bool globalUsingStatic = HasGlobalUsingStatic(start.Compilation, start.CancellationToken);
            start.RegisterSyntaxNodeAction(node => AnalyzeMethodGroup(node, globalUsingStatic), SyntaxKind.IdentifierName, SyntaxKind.GenericName);
        });
    }

    static void AnalyzeTrainer(SymbolAnalysisContext context, INamedTypeSymbol type)
    {
        var location = type.Locations.FirstOrDefault() ?? Location.None;
        if (!TrainerShapeRules.IsPartial(type))
            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.TrainerNotPartial, location, type.Name));
        if (TrainerShapeRules.ClassShapeProblem(type) is { } shape)
            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.TrainerClassShape, location, type.Name, shape));
        if (TrainerShapeRules.FindTrainMethod(type, out var trainProblem) == TrainMethodKind.None)
        {
            var methodLocation = type.GetMembers("Train").Concat(type.GetMembers("TrainAsync")).OfType<IMethodSymbol>()
                .Select(m => m.Locations.FirstOrDefault()).FirstOrDefault(l => l is not null) ?? location;
            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.TrainMethod, methodLocation, type.Name, trainProblem));
        }

        var names = new Dictionary<string, string>(System.StringComparer.Ordinal);
        foreach (var (property, optionAttribute) in TrainerShapeRules.OptionProperties(type))
        {
            var propertyLocation = property.Locations.FirstOrDefault() ?? location;
            if (TrainerShapeRules.SetterProblem(property) is { } setter)
                context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.OptionNotSettable, propertyLocation, property.Name, setter));
            if (!TrainerShapeRules.IsSupportedOptionType(property.Type))
                context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.OptionTypeUnsupported, propertyLocation, property.Name,
                    property.Type.ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat), TrainerShapeRules.SupportedTypesText));
            var name = TrainerShapeRules.OptionName(property, optionAttribute);
            string? conflict = null;
            if (TrainerShapeRules.ReservedOptionNames.Contains(name)) conflict = "every trainer already has";
            else if (names.TryGetValue(name, out var other)) conflict = $"property '{other}' already uses";
            else if (name.Length == 0 || name.Any(char.IsWhiteSpace)) conflict = "is not a valid option name";
            else names.Add(name, property.Name);
            if (conflict is not null)
                context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.OptionNameConflict, propertyLocation, property.Name, name, conflict));
        }
    }

    // The generator intercepts step(), clip_grad_norm_/clip_grad_value_ and Generate(...) invocations everywhere in the
    // project; say when one cannot be: a delegate, a receiver type generated code cannot name, or reflection.
    static void AnalyzeInvocation(SyntaxNodeAnalysisContext context)
    {
        var invocation = (InvocationExpressionSyntax)context.Node;
        var name = CalledName(invocation.Expression);
        if (name is "GetMethod" or "GetMethods" or "GetMember")
        {
            // Rare: the operation gives the argument's constant (a literal, a const, a nameof) in parameter order.
            if (context.SemanticModel.GetOperation(invocation, context.CancellationToken) is IInvocationOperation operation
                && ReflectedName(operation) is { } reflected)
                ReportNotIntercepted(context, invocation, reflected,
                    $"'{reflected}' is looked up through reflection, and only direct calls are intercepted; call it directly");
            return;
        }
        if (!TrainerShapeRules.IsInterceptableName(name)) return;
        if (context.SemanticModel.GetSymbolInfo(invocation, context.CancellationToken).Symbol is not IMethodSymbol method) return;
        method = method.ReducedFrom ?? method;
        var compilation = context.Compilation;
        if (!TrainerShapeRules.IsInterceptedCollective(method, compilation)) return;
        if (!compilation.IsSymbolAccessibleWithin(method.ContainingType, compilation.Assembly))
            ReportNotIntercepted(context, invocation, method.ContainingType.Name + "." + method.Name,
                $"its receiver type '{method.ContainingType.ToDisplayString(SymbolDisplayFormat.CSharpErrorMessageFormat)}' is not " +
                "accessible to generated code; make it internal or public, or call it through a variable of an accessible type");
    }

    // step, Generate or a clip used as a method group (converted to a delegate), not called.
    static void AnalyzeMethodGroup(SyntaxNodeAnalysisContext context, bool globalUsingStatic)
    {
        var name = (SimpleNameSyntax)context.Node;
        if (!TrainerShapeRules.IsInterceptableName(name.Identifier.ValueText)) return;
        ExpressionSyntax group = name.Parent is MemberAccessExpressionSyntax access && access.Name == name ? access
            : name.Parent is MemberBindingExpressionSyntax binding && binding.Name == name ? binding
            : name;
        if (group.Parent is InvocationExpressionSyntax call && call.Expression == group) return;
        // A bare name (a training loop's 'step' variable, most often) is a method group only where a method of that
        // name is in scope: decide that from symbols before binding the body.
        if (group == name && !MethodInScope(context, name, globalUsingStatic)) return;
        if (context.SemanticModel.GetSymbolInfo(group, context.CancellationToken).Symbol is not IMethodSymbol method) return;
        if (!TrainerShapeRules.IsInterceptedCollective(method, context.Compilation)) return;
        ReportNotIntercepted(context, group, method.ContainingType.Name + "." + method.Name,
            "it is used as a delegate, and only direct calls are intercepted; call it directly");
    }

    // A method named like the bare name in the enclosing types or their bases, or a using static that could bring one.
    static bool MethodInScope(SyntaxNodeAnalysisContext context, SimpleNameSyntax name, bool globalUsingStatic)
    {
        if (globalUsingStatic) return true;
        foreach (var ancestor in name.Ancestors())
        {
            var usings = ancestor switch
            {
                CompilationUnitSyntax unit => unit.Usings,
                BaseNamespaceDeclarationSyntax ns => ns.Usings,
                _ => default,
            };
            if (usings.Any(u => u.StaticKeyword.IsKind(SyntaxKind.StaticKeyword))) return true;
        }
        var text = name.Identifier.ValueText;
        for (var type = context.ContainingSymbol as INamedTypeSymbol ?? context.ContainingSymbol?.ContainingType; type is not null; type = type.ContainingType)
            for (var t = type; t is not null; t = t.BaseType)
                if (t.GetMembers(text).Any(m => m is IMethodSymbol)) return true;
        return false;
    }

    // global using static in any file brings other types' methods into every file's scope.
    static bool HasGlobalUsingStatic(Compilation compilation, System.Threading.CancellationToken cancellationToken) =>
        compilation.SyntaxTrees.Any(t => t.GetRoot(cancellationToken) is CompilationUnitSyntax unit
            && unit.Usings.Any(u => u.GlobalKeyword.IsKind(SyntaxKind.GlobalKeyword) && u.StaticKeyword.IsKind(SyntaxKind.StaticKeyword)));

    static string? CalledName(ExpressionSyntax expression) => expression switch
    {
        SimpleNameSyntax simple => simple.Identifier.ValueText,
        MemberAccessExpressionSyntax access => access.Name.Identifier.ValueText,
        MemberBindingExpressionSyntax binding => binding.Name.Identifier.ValueText,
        _ => null,
    };

    static void ReportNotIntercepted(SyntaxNodeAnalysisContext context, SyntaxNode node, string what, string reason)
    {
        var where = context.ContainingSymbol as INamedTypeSymbol ?? context.ContainingSymbol?.ContainingType;
        context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.CollectiveNotIntercepted, node.GetLocation(),
            what, where?.Name ?? context.ContainingSymbol?.Name, reason));
    }

    // typeof(X).GetMethod("step") and the like: the name of an interceptable method looked up by reflection.
    static string? ReflectedName(IInvocationOperation invocation)
    {
        if (invocation.TargetMethod is not { Name: "GetMethod" or "GetMethods" or "GetMember", ContainingType: { Name: "Type", ContainingNamespace.Name: "System" } }
            || invocation.Arguments.Length == 0
            || invocation.Arguments[0].Value.ConstantValue is not { HasValue: true, Value: string name }
            || !TrainerShapeRules.IsInterceptableName(name))
            return null;
        return name;
    }

    static void AnalyzeProject(CompilationAnalysisContext context, INamedTypeSymbol[] trainers)
    {
        if (trainers.Length == 0) return;
        var options = context.Options.AnalyzerConfigOptionsProvider.GlobalOptions;
        var fullNames = trainers.Select(t => t.ToDisplayString(SymbolDisplayFormat.CSharpErrorMessageFormat)).OrderBy(n => n, System.StringComparer.Ordinal).ToArray();
        if (options.TryGetValue(TrainerShapeRules.TrainerChoiceProperty, out var choice) && !string.IsNullOrWhiteSpace(choice))
        {
            var matches = fullNames.Count(n => TrainerShapeRules.MatchesChoice(choice, n));
            if (matches != 1)
                context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.UnknownTrainerChoice, Location.None,
                    choice.Trim(), string.Join(", ", fullNames)));
            return;
        }

        if (trainers.Length < 2) return;
        var output = context.Compilation.Options.OutputKind;
        if (output is not (OutputKind.ConsoleApplication or OutputKind.WindowsApplication)) return;
        if (HasUserEntryPoint(context)) return;
        foreach (var trainer in trainers)
            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.AmbiguousTrainer, trainer.Locations.FirstOrDefault() ?? Location.None,
                trainer.Name, trainers.Length, string.Join(", ", fullNames)));
    }

    // The same syntactic test the generator uses, over the user's trees (the generated Main is not the user's).
    static bool HasUserEntryPoint(CompilationAnalysisContext context) =>
        context.Compilation.SyntaxTrees
            .Where(t => !t.FilePath.EndsWith("VectorLm.EntryPoint.g.cs", System.StringComparison.Ordinal))
            .Any(t => t.GetRoot(context.CancellationToken).DescendantNodes(n => n is not Microsoft.CodeAnalysis.CSharp.Syntax.BaseMethodDeclarationSyntax)
                .Any(TrainerShapeRules.IsUserEntryPointSyntax));
}
