using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.Collectives;

/// <summary>The deadlock rules (VLM1001-VLM1003). Each links to docs/rules/{ID}.md.</summary>
internal static class CollectiveDiagnostics
{
    const string Category = "Reliability";

    public static string HelpLink(string id) => $"https://github.com/vectorlm/vectorlm/blob/main/docs/rules/{id}.md";

    /// <summary>Message arguments: {0} the collective, {1} the condition, {2} "certainly" or "may" wording.</summary>
    public static readonly DiagnosticDescriptor RankConditionalCollective = new(
        id: "VLM1001",
        title: "Collective on a rank-dependent path",
        messageFormat: "'{0}' deadlocks: the ranks for which '{1}' differs {2} a different sequence of collectives",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "Every rank must call every collective the same number of times and in the same order. A collective "
            + "reached only on some branches of a rank-dependent condition makes the other ranks wait forever.",
        helpLinkUri: HelpLink("VLM1001"));

    public static readonly DiagnosticDescriptor RankDependentLoop = new(
        id: "VLM1002",
        title: "Collective in a loop with a rank-dependent trip count",
        messageFormat: "'{0}' deadlocks: it runs in a loop whose number of iterations depends on the rank through '{1}'{2}",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "A collective inside a loop must run the same number of times on every rank. A loop condition (or the "
            + "collection it iterates) that depends on the rank makes some ranks call it more often than others.",
        helpLinkUri: HelpLink("VLM1002"));

    public static readonly DiagnosticDescriptor CollectiveAfterEarlyExit = new(
        id: "VLM1003",
        title: "Collective after a rank-dependent early exit",
        messageFormat: "'{0}' deadlocks: ranks for which '{1}' holds leave early and {2} reach it",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Warning,
        isEnabledByDefault: true,
        description: "A return, break, continue, goto, throw or process exit taken only on some ranks skips the collectives "
            + "that follow it on those ranks, while the other ranks wait for them.",
        helpLinkUri: HelpLink("VLM1003"));
}
