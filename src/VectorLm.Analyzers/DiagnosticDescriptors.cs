using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers;

/// <summary>
/// Every diagnostic VectorLm reports, in one table: VLM0001-VLM0009 (category Usage: a <c>[DistributedTrainer]</c>,
/// <c>[Option]</c> or interceptable call the generator cannot use) and VLM1001-VLM1003 (category Reliability:
/// collectives that deadlock). A rule that is sometimes only probable has one descriptor per certainty level under the
/// same ID, as CA2000 has <c>NotDisposedRule</c> and <c>MayBeDisposedRule</c>. Each links to docs/rules/{ID}.md and has
/// a row in AnalyzerReleases.Unshipped.md.
/// </summary>
internal static class DiagnosticDescriptors
{
    /// <summary>Help pages live beside the source: docs/rules/{ID}.md.</summary>
    public const string HelpLinkBase = "https://github.com/vectorlm/vectorlm/blob/main/docs/rules/";

    /// <summary>Code the generator cannot turn into a program (the VLM0xxx range).</summary>
    public const string Usage = "Usage";

    /// <summary>Code that deadlocks at run time (the VLM1xxx range).</summary>
    public const string Reliability = "Reliability";

    static DiagnosticDescriptor Create(string id, string category, DiagnosticSeverity severity, string title, string message,
        string? description = null, params string[] customTags) =>
        new(id, title, message, category, severity, isEnabledByDefault: true, description, HelpLinkBase + id + ".md", customTags);

    // ---- VLM0001-VLM0009: trainer shape (TrainerShapeAnalyzer) ----

    /// <summary>VLM0001: the generator adds members to the class, so every declaration must be partial.</summary>
    public static readonly DiagnosticDescriptor TrainerNotPartial = Create("VLM0001", Usage, DiagnosticSeverity.Error,
        "A [DistributedTrainer] class must be partial",
        "Trainer class '{0}' must be declared partial so the generator can add its Run method");

    /// <summary>VLM0002: exactly one of the training method shapes.</summary>
    public static readonly DiagnosticDescriptor TrainMethod = Create("VLM0002", Usage, DiagnosticSeverity.Error,
        "A [DistributedTrainer] class needs one training method",
        "Trainer class '{0}' {1}: declare one of 'public void Train(TrainerContext ctx)', 'public void Train(TrainerContext ctx, CancellationToken ct)' or 'public async Task TrainAsync(TrainerContext ctx, CancellationToken ct)' as an instance method");

    /// <summary>VLM0003: the generated code sets options through an object initializer.</summary>
    public static readonly DiagnosticDescriptor OptionNotSettable = Create("VLM0003", Usage, DiagnosticSeverity.Error,
        "An [Option] property must be settable",
        "[Option] property '{0}' {1}; give it a 'set' or 'init' accessor on an instance property");

    /// <summary>VLM0004: only types the command line can parse.</summary>
    public static readonly DiagnosticDescriptor OptionTypeUnsupported = Create("VLM0004", Usage, DiagnosticSeverity.Error,
        "An [Option] property must have a supported type",
        "[Option] property '{0}' has type '{1}', which the command line cannot parse; supported: {2}");

    /// <summary>VLM0005: a class the generated entry point can create.</summary>
    public static readonly DiagnosticDescriptor TrainerClassShape = Create("VLM0005", Usage, DiagnosticSeverity.Error,
        "A [DistributedTrainer] class must be a top-level, non-generic, creatable class",
        "Trainer class '{0}' {1}");

    /// <summary>VLM0006: which trainer does the generated Main run?</summary>
    public static readonly DiagnosticDescriptor AmbiguousTrainer = Create("VLM0006", Usage, DiagnosticSeverity.Error,
        "Several trainers in one executable need an explicit choice",
        "Trainer class '{0}' is one of {1} trainers in this executable ({2}); set the MSBuild property <VectorLmTrainer> to the one Main should run, or write your own Main that calls its Run(args)",
        customTags: WellKnownDiagnosticTags.CompilationEnd);

    /// <summary>VLM0007: option names must be unique and not taken by the launch options.</summary>
    public static readonly DiagnosticDescriptor OptionNameConflict = Create("VLM0007", Usage, DiagnosticSeverity.Error,
        "An option name must be unique",
        "[Option] property '{0}' maps to '--{1}', which {2}; rename the property or set [Option(Name = \"...\")]");

    /// <summary>VLM0008: the VectorLmTrainer property must name a trainer.</summary>
    public static readonly DiagnosticDescriptor UnknownTrainerChoice = Create("VLM0008", Usage, DiagnosticSeverity.Error,
        "VectorLmTrainer must name a [DistributedTrainer] class",
        "The MSBuild property VectorLmTrainer is '{0}', which names no [DistributedTrainer] class of this project; trainers: {1}",
        customTags: WellKnownDiagnosticTags.CompilationEnd);

    /// <summary>VLM0009: a collective call (step, gradient clip, Generate) that the generator cannot route through the runtime.</summary>
    public static readonly DiagnosticDescriptor CollectiveNotIntercepted = Create("VLM0009", Usage, DiagnosticSeverity.Warning,
        "A collective call must be interceptable",
        "'{0}' in '{1}' runs single-device code on every rank of a distributed trainer: {2}");

    // ---- VLM1001-VLM1003: deadlocks (CollectiveDeadlockAnalyzer); {0} the collective, {1} the rank-dependent condition ----

    const string RankConditionalTitle = "Collective on a rank-dependent path";
    const string RankConditionalDescription = "Every rank must call every collective the same number of times and in the "
        + "same order. A collective reached only on some branches of a rank-dependent condition makes the other ranks wait forever.";

    /// <summary>VLM1001, certain: the branches of a rank-dependent condition perform different collectives.</summary>
    public static readonly DiagnosticDescriptor RankConditionalCollective = Create("VLM1001", Reliability, DiagnosticSeverity.Warning,
        RankConditionalTitle,
        "'{0}' deadlocks: the ranks for which '{1}' differs perform a different sequence of collectives",
        RankConditionalDescription);

    /// <summary>VLM1001, probable: the branches' sequences could not be compared (loops, dispatch, delegates, work limits).</summary>
    public static readonly DiagnosticDescriptor MaybeRankConditionalCollective = Create("VLM1001", Reliability, DiagnosticSeverity.Warning,
        RankConditionalTitle,
        "'{0}' may deadlock: the ranks for which '{1}' differs may perform a different sequence of collectives",
        RankConditionalDescription);

    const string RankDependentLoopTitle = "Collective in a loop with a rank-dependent trip count";
    const string RankDependentLoopDescription = "A collective inside a loop must run the same number of times on every rank. "
        + "A loop condition (or the collection it iterates) that depends on the rank makes some ranks call it more often than others.";

    /// <summary>VLM1002, certain: the loop's trip count depends on the rank on every path.</summary>
    public static readonly DiagnosticDescriptor RankDependentLoop = Create("VLM1002", Reliability, DiagnosticSeverity.Warning,
        RankDependentLoopTitle,
        "'{0}' deadlocks: it runs in a loop whose number of iterations depends on the rank through '{1}'",
        RankDependentLoopDescription);

    /// <summary>VLM1002, probable: only some paths through the loop perform the collective.</summary>
    public static readonly DiagnosticDescriptor MaybeRankDependentLoop = Create("VLM1002", Reliability, DiagnosticSeverity.Warning,
        RankDependentLoopTitle,
        "'{0}' may deadlock: it runs, on some paths, in a loop whose number of iterations depends on the rank through '{1}'",
        RankDependentLoopDescription);

    const string EarlyExitTitle = "Collective after a rank-dependent early exit";
    const string EarlyExitDescription = "A return, break, continue, goto, throw or process exit taken only on some ranks "
        + "skips the collectives that follow it on those ranks, while the other ranks wait for them.";

    /// <summary>VLM1003, certain: the ranks that leave early never reach the collective.</summary>
    public static readonly DiagnosticDescriptor CollectiveAfterEarlyExit = Create("VLM1003", Reliability, DiagnosticSeverity.Warning,
        EarlyExitTitle,
        "'{0}' deadlocks: ranks for which '{1}' holds leave early and never reach it",
        EarlyExitDescription);

    /// <summary>VLM1003, probable: the ranks that leave early may not reach the collective.</summary>
    public static readonly DiagnosticDescriptor MaybeCollectiveAfterEarlyExit = Create("VLM1003", Reliability, DiagnosticSeverity.Warning,
        EarlyExitTitle,
        "'{0}' may deadlock: ranks for which '{1}' holds leave early and may not reach it",
        EarlyExitDescription);
}
