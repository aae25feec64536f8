using System.Collections.Immutable;
using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Text;
using VectorLm.Analyzers.TrainerShape;
using VectorLm.Generators.Model;

namespace VectorLm.Generators;

/// <summary>
/// Turns a <c>[DistributedTrainer]</c> partial class with a one-device training loop into a program that runs it on N
/// ranks: a <c>Run(string[] args)</c> entry point with the command line, a <c>Main</c> when the project has none, and
/// interceptors that route <c>optimizer.step()</c>, gradient clipping and <c>ISamplingEngine.Generate</c> through the
/// collectives at every call site of the project.
/// </summary>
/// <remarks>
/// The generator never reports diagnostics: the VLM0001+ analyzers do, and the generator skips what they reject
/// (the rules are one shared file). Split by role: <c>Parser</c> (symbols to models), <c>Emitter</c> (models to text).
/// </remarks>
[Generator(LanguageNames.CSharp)]
public sealed partial class TrainerGenerator : IIncrementalGenerator
{
    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        // Unchanged trainers and files reuse their models after edits elsewhere (see ModelCache).
        var cache = new ModelCache();
        var trainers = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                TrainerShapeRules.DistributedTrainerAttribute,
                static (node, _) => node is ClassDeclarationSyntax,
                (ctx, ct) => cache.Trainer(ctx, () => Parser.Parse(ctx, ct)))
            .Where(static spec => spec is not null)
            .Select(static (spec, _) => spec!)
            .WithTrackingName(TrackingNames.Trainers);

        var validTrainers = trainers
            .Where(static spec => spec.IsValid)
            .WithTrackingName(TrackingNames.ValidTrainers);

        context.RegisterSourceOutput(validTrainers, static (spc, spec) => Emitter.EmitTrainer(spc, spec));

        // Collective calls are intercepted in every file, not only in trainers: a step in a helper class must average
        // gradients too. One transform per file.
        var callSites = context.SyntaxProvider
            .CreateSyntaxProvider(
                static (node, _) => node is CompilationUnitSyntax,
                (ctx, ct) => cache.CallSites(ctx.Node.SyntaxTree, ctx.SemanticModel.Compilation, () => Interceptors.ParseFile(ctx.SemanticModel, ct)))
            .Where(static sites => sites.Count > 0)
            .WithTrackingName(TrackingNames.CallSites);

        var interceptors = callSites
            .Collect()
            .Select(static (files, _) => new EquatableArray<InterceptorSpec>(files.SelectMany(f => f)))
            .WithTrackingName(TrackingNames.Interceptors);

        context.RegisterSourceOutput(interceptors, static (spc, sites) =>
        {
            if (sites.Count > 0)
                spc.AddSource(Interceptors.HintName, SourceText.From(Interceptors.Source(sites), Encoding.UTF8));
        });

        var hasUserEntryPoint = context.SyntaxProvider
            .CreateSyntaxProvider(
                static (node, _) => TrainerShapeRules.IsUserEntryPointSyntax(node),
                static (_, _) => true)
            .Collect()
            .Select(static (found, _) => found.Length > 0)
            .WithTrackingName(TrackingNames.UserEntryPoint);

        var settings = context.CompilationProvider
            .Select(static (c, _) => c.Options.OutputKind is OutputKind.ConsoleApplication or OutputKind.WindowsApplication)
            .Combine(context.AnalyzerConfigOptionsProvider.Select(static (o, _) =>
                o.GlobalOptions.TryGetValue(TrainerShapeRules.TrainerChoiceProperty, out var v) && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null))
            .Select(static (pair, _) => new ProjectSettings { IsExecutable = pair.Left, TrainerChoice = pair.Right })
            .WithTrackingName(TrackingNames.ProjectSettings);

        var entryPoint = trainers
            .Select(static (spec, _) => (spec.FullName, spec.IsValid, spec.GlobalName))
            .Collect()
            .Combine(hasUserEntryPoint)
            .Combine(settings)
            .Select(static (input, _) => ChooseEntryPoint(input.Left.Left, input.Left.Right, input.Right))
            .WithTrackingName(TrackingNames.EntryPoint);

        context.RegisterSourceOutput(entryPoint, static (spc, spec) =>
        {
            if (spec is not null) Emitter.EmitEntryPoint(spc, spec);
        });
    }

    // A Main is generated only in an executable without its own entry point, for the one trainer (or the one the
    // VectorLmTrainer property names); otherwise VLM0006/VLM0008 explain why there is none.
    static EntryPointSpec? ChooseEntryPoint(
        ImmutableArray<(string FullName, bool IsValid, string GlobalName)> trainers, bool hasUserEntryPoint, ProjectSettings settings)
    {
        if (!settings.IsExecutable || hasUserEntryPoint || trainers.IsDefaultOrEmpty) return null;
        var chosen = settings.TrainerChoice is { } choice
            ? trainers.Where(t => TrainerShapeRules.MatchesChoice(choice, t.FullName)).ToArray()
            : trainers.ToArray();
        if (chosen.Length != 1 || !chosen[0].IsValid) return null;
        return new EntryPointSpec { TrainerGlobalName = chosen[0].GlobalName };
    }
}
