using System;
using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using VectorLm.Analyzers.Shared;
using Microsoft.CodeAnalysis.Diagnostics;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Reports collectives (Barrier, AllReduce, Generate, a trainer's optimizer step, and code that calls them) that only
/// some ranks reach: VLM1001 (rank-dependent branch), VLM1002 (rank-dependent loop), VLM1003 (rank-dependent early
/// exit). The analysis follows PARCOACH: taint from rank sources, control dependence from post-dominators, and a
/// comparison of the collective sequences of each tainted branch's successors.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class CollectiveDeadlockAnalyzer : DiagnosticAnalyzer
{
    /// <inheritdoc />
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(
        DiagnosticDescriptors.RankConditionalCollective,
        DiagnosticDescriptors.MaybeRankConditionalCollective,
        DiagnosticDescriptors.RankDependentLoop,
        DiagnosticDescriptors.MaybeRankDependentLoop,
        DiagnosticDescriptors.CollectiveAfterEarlyExit,
        DiagnosticDescriptors.MaybeCollectiveAfterEarlyExit);

    /// <inheritdoc />
    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            // Nothing to check in a compilation that cannot see VectorLm's attributes.
            if (!ReferencesVectorLm(start.Compilation)) return;
            var model = new CollectiveModel(start.Compilation, start.Options);
            start.RegisterSymbolAction(symbolContext => AnalyzeType(model, symbolContext), SymbolKind.NamedType);
        });
    }

    internal const string CollectiveAttributeName = "VectorLm." + nameof(CollectiveAttribute);

    static bool ReferencesVectorLm(Compilation compilation) =>
        compilation.GetTypeByMetadataName(CollectiveAttributeName) is not null || HasAmbiguous(compilation, CollectiveAttributeName);

    static bool HasAmbiguous(Compilation compilation, string metadataName)
    {
        // GetTypeByMetadataName returns null when several assemblies define the type; fall back to a search.
        foreach (var reference in compilation.References)
            if (compilation.GetAssemblyOrModuleSymbol(reference) is IAssemblySymbol assembly
                && assembly.GetTypeByMetadataName(metadataName) is not null)
                return true;
        return false;
    }

    static void AnalyzeType(CollectiveModel model, SymbolAnalysisContext context)
    {
        var type = (INamedTypeSymbol)context.Symbol;
        if (type.TypeKind is not (TypeKind.Class or TypeKind.Struct or TypeKind.Interface)) return;
        TypeAnalysis analysis;
        try
        {
            if (!model.HasCollectives(type, context.CancellationToken)) return;
            analysis = model.GetTypeAnalysis(type, context.CancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException && IsRoslynLimitation(e))
        {
            return;
        }
        foreach (var diagnostic in analysis.Diagnostics)
        {
            var tree = diagnostic.Location.SourceTree;
            if (tree is null || model.IsGenerated(tree, context.CancellationToken)) continue;
            context.ReportDiagnostic(diagnostic);
        }
    }

    /// <summary>
    /// Roslyn's flow graph builder rejects some shapes of broken code with these; skipping the type is the only option.
    /// Anything else is a bug in this analyzer and surfaces as AD0001.
    /// </summary>
    static bool IsRoslynLimitation(Exception e) => e is ArgumentException or InvalidOperationException or InvalidCastException;
}
