using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.TrainerShape;

/// <summary>The VLM0001+ rules: misuse of <c>[DistributedTrainer]</c> and <c>[Option]</c> that the generator cannot turn into a program.</summary>
public static class TrainerShapeDescriptors
{
    const string Category = "VectorLm.TrainerShape";

    /// <summary>Help pages live beside the source: docs/rules/{ID}.md.</summary>
    public const string HelpLinkBase = "https://github.com/vectorlm/vectorlm/blob/main/docs/rules/";

    static DiagnosticDescriptor Rule(string id, string title, string message, DiagnosticSeverity severity = DiagnosticSeverity.Error, params string[] tags) =>
        new(id, title, message, Category, severity, isEnabledByDefault: true, helpLinkUri: HelpLinkBase + id + ".md", customTags: tags);

    /// <summary>VLM0001: the generator adds members to the class, so every declaration must be partial.</summary>
    public static readonly DiagnosticDescriptor TrainerNotPartial = Rule("VLM0001",
        "A [DistributedTrainer] class must be partial",
        "Trainer class '{0}' must be declared partial so the generator can add its Run method");

    /// <summary>VLM0002: exactly one of the two training method shapes.</summary>
    public static readonly DiagnosticDescriptor TrainMethod = Rule("VLM0002",
        "A [DistributedTrainer] class needs one training method",
        "Trainer class '{0}' {1}: declare one of 'public void Train(TrainerContext ctx)', 'public void Train(TrainerContext ctx, CancellationToken ct)' or 'public async Task TrainAsync(TrainerContext ctx, CancellationToken ct)' as an instance method");

    /// <summary>VLM0003: the generated code sets options through an object initializer.</summary>
    public static readonly DiagnosticDescriptor OptionNotSettable = Rule("VLM0003",
        "An [Option] property must be settable",
        "[Option] property '{0}' {1}; give it a 'set' or 'init' accessor on an instance property");

    /// <summary>VLM0004: only types the command line can parse.</summary>
    public static readonly DiagnosticDescriptor OptionTypeUnsupported = Rule("VLM0004",
        "An [Option] property must have a supported type",
        "[Option] property '{0}' has type '{1}', which the command line cannot parse; supported: {2}");

    /// <summary>VLM0005: a class the generated entry point can create.</summary>
    public static readonly DiagnosticDescriptor TrainerClassShape = Rule("VLM0005",
        "A [DistributedTrainer] class must be a top-level, non-generic, creatable class",
        "Trainer class '{0}' {1}");

    /// <summary>VLM0006: which trainer does the generated Main run?</summary>
    public static readonly DiagnosticDescriptor AmbiguousTrainer = Rule("VLM0006",
        "Several trainers in one executable need an explicit choice",
        "Trainer class '{0}' is one of {1} trainers in this executable ({2}); set the MSBuild property <VectorLmTrainer> to the one Main should run, or write your own Main that calls its Run(args)",
        DiagnosticSeverity.Error, WellKnownDiagnosticTags.CompilationEnd);

    /// <summary>VLM0007: option names must be unique and not taken by the launch options.</summary>
    public static readonly DiagnosticDescriptor OptionNameConflict = Rule("VLM0007",
        "An option name must be unique",
        "[Option] property '{0}' maps to '--{1}', which {2}; rename the property or set [Option(Name = \"...\")]");

    /// <summary>VLM0008: the VectorLmTrainer property must name a trainer.</summary>
    public static readonly DiagnosticDescriptor UnknownTrainerChoice = Rule("VLM0008",
        "VectorLmTrainer must name a [DistributedTrainer] class",
        "The MSBuild property VectorLmTrainer is '{0}', which names no [DistributedTrainer] class of this project; trainers: {1}",
        DiagnosticSeverity.Error, WellKnownDiagnosticTags.CompilationEnd);

    /// <summary>VLM0009: a collective call (step, gradient clip, Generate) that the generator cannot route through the runtime.</summary>
    public static readonly DiagnosticDescriptor CollectiveNotIntercepted = Rule("VLM0009",
        "A collective call must be interceptable",
        "'{0}' in '{1}' runs single-device code on every rank of a distributed trainer: {2}",
        DiagnosticSeverity.Warning);
}
