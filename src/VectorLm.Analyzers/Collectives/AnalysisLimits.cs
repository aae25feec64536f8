using System;
using System.Collections.Generic;
using System.Globalization;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// The work limits of the deadlock analysis (VLM1001-VLM1003), in one place. Past a limit the analysis stops where it
/// is and says less, never more: a sequence comparison becomes "may", a taint pass keeps the taint found so far, a call
/// with too many targets counts as performing no collective. <see cref="AnalysisStats"/> counts each time a limit is
/// hit. Every limit can be set from a .globalconfig or .editorconfig, as roslyn-analyzers reads its dataflow limits
/// (<c>dotnet_code_quality.max_interprocedural_method_call_chain</c>):
/// <code>
/// [*.cs]
/// vectorlm.analysis.max_taint_rounds = 8
/// </code>
/// Summaries are shared between files, so one value holds for the whole compilation: a .globalconfig value wins, else
/// the first source file whose .editorconfig section sets it. A value that is not a positive integer, or an unknown
/// <c>vectorlm.analysis.*</c> key, stops the analyzer with an error (AD0001) that names it.
/// </summary>
internal sealed class AnalysisLimits
{
    /// <summary>The prefix of every key.</summary>
    public const string KeyPrefix = "vectorlm.analysis.";

    /// <summary>The limits used when nothing is configured.</summary>
    public static readonly AnalysisLimits Default = new();

    /// <summary>Rounds over all bodies of one type (fields and summaries feeding each other) before it stops. Key <c>max_type_rounds</c>.</summary>
    public int TypeRounds { get; private set; } = 10;

    /// <summary>Rounds of the deadlock checks of one type (a check can mark a parameter as controlling collectives, which other checks read). Key <c>max_check_rounds</c>.</summary>
    public int CheckRounds { get; private set; } = 4;

    /// <summary>Rounds of implicit-flow (control dependence) refinement in one taint pass. Key <c>max_taint_rounds</c>.</summary>
    public int TaintRounds { get; private set; } = 12;

    /// <summary>Worklist steps per block in one round of a taint pass before the round stops. Key <c>max_steps_per_block</c>.</summary>
    public int StepsPerBlock { get; private set; } = 64;

    /// <summary>Rounds of the backward walk that computes a region's collective sequence (a loop that keeps changing). Key <c>max_sequence_rounds</c>.</summary>
    public int SequenceRounds { get; private set; } = 64;

    /// <summary>Longest collective sequence text kept; a longer one is "not a valid sequence". Key <c>max_sequence_length</c>.</summary>
    public int SequenceLength { get; private set; } = 4096;

    /// <summary>Nesting of rank-uniform branches written structurally ("{condition: arm | arm}") before giving up. Key <c>max_branch_nesting</c>.</summary>
    public int BranchNesting { get; private set; } = 6;

    /// <summary>Implementations and overrides one interface or virtual call may reach before it counts as no collective. Key <c>max_dispatch_targets</c>.</summary>
    public int DispatchTargets { get; private set; } = 32;

    /// <summary>Flow captures followed back to a delegate's value (<c>x?.Invoke()</c>, <c>x!()</c>). Key <c>max_capture_depth</c>.</summary>
    public int CaptureDepth { get; private set; } = 8;

    // Key (without the prefix) and setter of each limit.
    static readonly KeyValuePair<string, Action<AnalysisLimits, int>>[] Keys =
    [
        new("max_type_rounds", (l, v) => l.TypeRounds = v),
        new("max_check_rounds", (l, v) => l.CheckRounds = v),
        new("max_taint_rounds", (l, v) => l.TaintRounds = v),
        new("max_steps_per_block", (l, v) => l.StepsPerBlock = v),
        new("max_sequence_rounds", (l, v) => l.SequenceRounds = v),
        new("max_sequence_length", (l, v) => l.SequenceLength = v),
        new("max_branch_nesting", (l, v) => l.BranchNesting = v),
        new("max_dispatch_targets", (l, v) => l.DispatchTargets = v),
        new("max_capture_depth", (l, v) => l.CaptureDepth = v),
    ];

    /// <summary>The limits configured for <paramref name="compilation"/>: .globalconfig first, then the source files' .editorconfig sections.</summary>
    public static AnalysisLimits Read(AnalyzerOptions options, Compilation compilation)
    {
        var provider = options.AnalyzerConfigOptionsProvider;
        var sources = new List<(AnalyzerConfigOptions Options, string Where)> { (provider.GlobalOptions, "the global analyzer config") };
        foreach (var tree in compilation.SyntaxTrees) sources.Add((provider.GetOptions(tree), "the .editorconfig of " + tree.FilePath));

        AnalysisLimits? limits = null;
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (source, where) in sources)
        {
            foreach (var key in source.Keys)
            {
                if (!key.StartsWith(KeyPrefix, StringComparison.Ordinal) || set.Contains(key)) continue;
                var name = key.Substring(KeyPrefix.Length);
                var setter = Array.Find(Keys, k => k.Key == name).Value
                    ?? throw new InvalidOperationException($"'{key}' in {where} is not a VectorLm analysis limit; known: {KnownKeys()}");
                source.TryGetValue(key, out var text);
                setter(limits ??= new AnalysisLimits(), Parse(key, text, where));
                set.Add(key);
            }
        }
        return limits ?? Default;
    }

    /// <summary>A limit's value: a positive integer, else an error naming the key, its value and where it was set.</summary>
    public static int Parse(string key, string? text, string where)
    {
        if (int.TryParse(text?.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0) return value;
        throw new InvalidOperationException($"'{key} = {text}' in {where}: a VectorLm analysis limit must be a positive integer");
    }

    static string KnownKeys() => string.Join(", ", Array.ConvertAll(Keys, k => KeyPrefix + k.Key));
}
