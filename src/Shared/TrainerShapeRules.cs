// Shared by the VLM0001+ analyzers and the VectorLm source generator (src/Shared, compiled into both), so that the
// generator emits code for exactly the trainers the analyzers accept. The runtime's attribute sources are compiled into
// both too, so attribute and argument names come from nameof, not from string literals.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace VectorLm.Analyzers.TrainerShape;

/// <summary>The rules a <c>[DistributedTrainer]</c> class must follow, as symbol checks.</summary>
internal static class TrainerShapeRules
{
    // The runtime's namespace; the attribute types compiled in here live in VectorLm.Analyzers.Shared (see Attributes.cs).
    const string RuntimeNamespace = "VectorLm.";

    public const string DistributedTrainerAttribute = RuntimeNamespace + nameof(Shared.DistributedTrainerAttribute);
    public const string OptionAttribute = RuntimeNamespace + nameof(Shared.OptionAttribute);
    public const string TrainerContext = "VectorLm.TrainerContext";
    public const string Optimizer = "TorchSharp.torch+optim+Optimizer";
    public const string SamplingEngine = "VectorLm.Sampling.ISamplingEngine";
    public const string TorchUtils = "TorchSharp.torch+nn+utils";
    public const string ClipGradNorm = "clip_grad_norm_";
    public const string ClipGradValue = "clip_grad_value_";

    /// <summary>The runtime class whose methods generated interceptors call.</summary>
    public const string CollectiveInterceptors = "VectorLm.Hosting.CollectiveInterceptors";

    /// <summary>Names of the methods the generator may intercept: a cheap syntactic filter before binding.</summary>
    public static bool IsInterceptableName(string? name) => name is "step" or "Generate" or ClipGradNorm or ClipGradValue;

    /// <summary>The MSBuild property that picks the trainer whose <c>Main</c> is generated when a project has several.</summary>
    public const string TrainerChoiceProperty = "build_property.VectorLmTrainer";

    /// <summary>Option names the runtime's command line already uses.</summary>
    public static readonly string[] ReservedOptionNames =
        ["nproc-per-node", "world-size", "backend", "master-addr", "master-port", "nnodes", "node-rank", "seed", "threads", "config", "help", "version"];

    /// <summary>The option types the generated command line supports (arrays of the non-nullable ones too).</summary>
    public const string SupportedTypesText =
        "string, bool, byte, short, int, long, float, double, decimal, System.TimeSpan, System.IO.FileInfo, " +
        "System.IO.DirectoryInfo, enums, nullable forms of these, and one-dimensional arrays of them";

    /// <summary>True when every declaration of <paramref name="type"/> carries the <c>partial</c> modifier.</summary>
    public static bool IsPartial(INamedTypeSymbol type) =>
        type.DeclaringSyntaxReferences.All(r => r.GetSyntax() is not TypeDeclarationSyntax t || t.Modifiers.Any(SyntaxKind.PartialKeyword));

    /// <summary>Why <paramref name="type"/> cannot host a trainer (generic, nested, static, abstract, no parameterless constructor), or null.</summary>
    public static string? ClassShapeProblem(INamedTypeSymbol type)
    {
        if (type.ContainingType is not null) return "is nested in " + type.ContainingType.Name + "; declare it at namespace level";
        if (type.IsGenericType) return "is generic; the generated entry point cannot pick type arguments";
        if (type.IsStatic) return "is static; the generated code creates an instance per run";
        if (type.IsAbstract) return "is abstract; the generated code creates an instance per run";
        if (type.TypeKind != TypeKind.Class) return "is not a class";
        if (!type.InstanceConstructors.Any(c => c.Parameters.Length == 0))
            return "has no parameterless constructor; the generated code creates it with 'new' and sets the options";
        return null;
    }

    /// <summary>Finds the training method. <paramref name="problem"/> says what is wrong when the result is <see cref="TrainMethodKind.None"/>.</summary>
    public static TrainMethodKind FindTrainMethod(INamedTypeSymbol type, out string? problem)
    {
        problem = null;
        var candidates = type.GetMembers("Train").Concat(type.GetMembers("TrainAsync")).OfType<IMethodSymbol>().ToArray();
        var valid = candidates.Where(m => Classify(m) != TrainMethodKind.None).ToArray();
        if (valid.Length == 1) return Classify(valid[0]);
        if (valid.Length > 1)
        {
            problem = valid.All(m => m.Name == "Train")
                ? "declares Train both with and without a CancellationToken; keep one"
                : "declares both Train and TrainAsync; keep one";
            return TrainMethodKind.None;
        }
        problem = candidates.Length == 0
            ? "has no training method"
            : $"has '{candidates[0].ToDisplayString(SymbolDisplayFormat.MinimallyQualifiedFormat)}', which does not match";
        return TrainMethodKind.None;
    }

    static TrainMethodKind Classify(IMethodSymbol m)
    {
        if (m.IsStatic || m.IsGenericMethod || m.MethodKind != MethodKind.Ordinary) return TrainMethodKind.None;
        if (m.Name == "Train" && m.ReturnsVoid && m.Parameters.Length == 1 && IsNamed(m.Parameters[0].Type, TrainerContext)
            && m.Parameters[0].RefKind == RefKind.None)
            return TrainMethodKind.Sync;
        if (m.Name == "Train" && m.ReturnsVoid && m.Parameters.Length == 2 && IsNamed(m.Parameters[0].Type, TrainerContext)
            && IsNamed(m.Parameters[1].Type, "System.Threading.CancellationToken") && m.Parameters.All(p => p.RefKind == RefKind.None))
            return TrainMethodKind.SyncCancellable;
        if (m.Name == "TrainAsync" && IsNamed(m.ReturnType, "System.Threading.Tasks.Task") && m.Parameters.Length == 2
            && IsNamed(m.Parameters[0].Type, TrainerContext) && IsNamed(m.Parameters[1].Type, "System.Threading.CancellationToken")
            && m.Parameters.All(p => p.RefKind == RefKind.None))
            return TrainMethodKind.Async;
        return TrainMethodKind.None;
    }

    /// <summary>The <c>[Option]</c> attribute on <paramref name="property"/>, or null.</summary>
    public static AttributeData? GetOptionAttribute(IPropertySymbol property) =>
        property.GetAttributes().FirstOrDefault(a => a.AttributeClass is { } c && IsNamed(c, OptionAttribute));

    /// <summary>The properties of <paramref name="type"/> (not inherited) that carry <c>[Option]</c>, in declaration order.</summary>
    public static IEnumerable<(IPropertySymbol Property, AttributeData Attribute)> OptionProperties(INamedTypeSymbol type) =>
        type.GetMembers().OfType<IPropertySymbol>()
            .Select(p => (Property: p, Attribute: GetOptionAttribute(p)))
            .Where(x => x.Attribute is not null)
            .Select(x => (x.Property, x.Attribute!));

    /// <summary>Why the generated code cannot set <paramref name="property"/>, or null.</summary>
    public static string? SetterProblem(IPropertySymbol property)
    {
        if (property.IsStatic) return "is static";
        if (property.IsIndexer) return "is an indexer";
        if (property.SetMethod is null) return "has no setter or init accessor";
        if (property.IsRequired) return "is required; give it an initializer instead, the command line supplies the default";
        return null;
    }

    /// <summary>True when the generated command line can parse <paramref name="type"/>.</summary>
    public static bool IsSupportedOptionType(ITypeSymbol type)
    {
        if (type is IArrayTypeSymbol array)
            return array.Rank == 1 && array.ElementType is not IArrayTypeSymbol
                && !IsNullableValueType(array.ElementType) && IsSupportedScalar(array.ElementType);
        if (IsNullableValueType(type)) return IsSupportedScalar(((INamedTypeSymbol)type).TypeArguments[0]);
        return IsSupportedScalar(type);
    }

    static bool IsSupportedScalar(ITypeSymbol type)
    {
        switch (type.SpecialType)
        {
            case SpecialType.System_String:
            case SpecialType.System_Boolean:
            case SpecialType.System_Byte:
            case SpecialType.System_Int16:
            case SpecialType.System_Int32:
            case SpecialType.System_Int64:
            case SpecialType.System_Single:
            case SpecialType.System_Double:
            case SpecialType.System_Decimal:
                return true;
        }
        if (type.TypeKind == TypeKind.Enum) return true;
        return IsNamed(type, "System.TimeSpan") || IsNamed(type, "System.IO.FileInfo")
            || IsNamed(type, "System.IO.DirectoryInfo");
    }

    static bool IsNullableValueType(ITypeSymbol type) =>
        type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T };

    /// <summary>The option name (no dashes): <c>[Option(Name = ...)]</c>, else the property name in kebab case.</summary>
    public static string OptionName(IPropertySymbol property, AttributeData attribute)
    {
        foreach (var named in attribute.NamedArguments)
            if (named.Key == nameof(Shared.OptionAttribute.Name) && named.Value.Value is string { Length: > 0 } name) return name.TrimStart('-');
        return ToKebabCase(property.Name);
    }

    /// <summary><c>SampleEvery</c> to <c>sample-every</c>, <c>MaxLR</c> to <c>max-lr</c>, <c>HTTPPort</c> to <c>http-port</c>.</summary>
    public static string ToKebabCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (c == '_')
            {
                if (sb.Length > 0 && sb[sb.Length - 1] != '-') sb.Append('-');
                continue;
            }
            if (char.IsUpper(c) && i > 0 && sb.Length > 0 && sb[sb.Length - 1] != '-')
            {
                var previous = name[i - 1];
                var nextIsLower = i + 1 < name.Length && char.IsLower(name[i + 1]);
                if (char.IsLower(previous) || char.IsDigit(previous) || (char.IsUpper(previous) && nextIsLower)) sb.Append('-');
            }
            sb.Append(char.ToLowerInvariant(c));
        }
        return sb.ToString().Trim('-');
    }

    /// <summary>True when <paramref name="type"/> is the type named <paramref name="metadataName"/> (namespace and nested names joined by '.' or '+').</summary>
    public static bool IsNamed(ITypeSymbol type, string metadataName)
    {
        var plus = metadataName.LastIndexOf('+');
        var dot = metadataName.LastIndexOf('.');
        var split = Math.Max(plus, dot);
        var name = metadataName.Substring(split + 1);
        if (type.MetadataName != name) return false;
        var container = metadataName.Substring(0, Math.Max(split, 0));
        if (plus == split && plus > 0) return type.ContainingType is { } outer && IsNamed(outer, container);
        return type.ContainingType is null && type.ContainingNamespace.ToDisplayString() == container;
    }

    /// <summary>True when <paramref name="type"/> is or derives from the class named <paramref name="metadataName"/>.</summary>
    public static bool DerivesFrom(ITypeSymbol? type, string metadataName)
    {
        for (var t = type; t is not null; t = t.BaseType)
            if (IsNamed(t, metadataName)) return true;
        return false;
    }

    /// <summary>True for <c>torch.optim.Optimizer.step(Func&lt;Tensor&gt;)</c> and its overrides (AdamW, SGD...).</summary>
    public static bool IsOptimizerStep(IMethodSymbol method)
    {
        if (method.Name != "step" || method.IsStatic) return false;
        for (var m = method; m is not null; m = m.OverriddenMethod)
            if (IsNamed(m.ContainingType, Optimizer) && m.Parameters.Length == 1) return true;
        return false;
    }

    /// <summary>
    /// True for <c>torch.nn.utils.clip_grad_norm_(parameters, max_norm, norm_type)</c> and
    /// <c>clip_grad_value_(parameters, clip_value)</c>: they must see gradients averaged over ranks.
    /// </summary>
    public static bool IsGradientClip(IMethodSymbol method) =>
        // The name first: this runs on every call of the project, and IsNamed compares strings it cuts out.
        ((method.Name == ClipGradNorm && method.Parameters.Length == 3) || (method.Name == ClipGradValue && method.Parameters.Length == 2))
        && method.IsStatic && method.ContainingType is { } type && IsNamed(type, TorchUtils);

    /// <summary>True for a call the generator routes through the runtime: an optimizer step, a gradient clip or a Generate.</summary>
    public static bool IsInterceptedCollective(IMethodSymbol method, Compilation compilation) =>
        IsOptimizerStep(method) || IsGradientClip(method) || IsSamplingGenerate(method, compilation);

    /// <summary>True for <c>ISamplingEngine.Generate</c> and a class's implementation of it.</summary>
    public static bool IsSamplingGenerate(IMethodSymbol method, Compilation compilation)
    {
        if (method.Name != "Generate" || method.IsStatic) return false;
        if (compilation.GetTypeByMetadataName(SamplingEngine) is not { } engine) return false;
        var generate = engine.GetMembers("Generate").OfType<IMethodSymbol>().FirstOrDefault();
        if (generate is null) return false;
        if (SymbolEqualityComparer.Default.Equals(method.OriginalDefinition, generate)) return true;
        var implementation = method.ContainingType.FindImplementationForInterfaceMember(generate);
        return SymbolEqualityComparer.Default.Equals(implementation, method);
    }

    /// <summary>True when the user's source declares an entry point: top-level statements or a static <c>Main</c>.</summary>
    public static bool IsUserEntryPointSyntax(SyntaxNode node) => node switch
    {
        GlobalStatementSyntax => true,
        MethodDeclarationSyntax { Identifier.ValueText: "Main", ParameterList.Parameters.Count: <= 1 } m
            => m.Modifiers.Any(SyntaxKind.StaticKeyword),
        _ => false,
    };

    /// <summary>Does <paramref name="choice"/> (the VectorLmTrainer property) name the trainer <paramref name="fullName"/> (namespace.Class)?</summary>
    public static bool MatchesChoice(string choice, string fullName)
    {
        choice = choice.Trim();
        if (choice.StartsWith("global::", StringComparison.Ordinal)) choice = choice.Substring("global::".Length);
        if (choice == fullName) return true;
        var dot = fullName.LastIndexOf('.');
        return dot >= 0 && choice == fullName.Substring(dot + 1);
    }
}
