using System.Collections.Generic;

namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// The sequence of collectives along the paths of a region of a <see cref="FlowGraph"/>, as in PARCOACH: a backward
/// walk where each block's sequence is its own collectives followed by its successors' common sequence; where the
/// successors disagree (or a loop repeats collectives) the result is "not a valid sequence", here null.
/// </summary>
internal static class Sequences
{
    /// <summary>
    /// The sequence from the start of <paramref name="start"/> to <paramref name="stop"/> (exclusive; -1 for the
    /// function's exit), or null when paths disagree. <paramref name="nodes"/> gets the blocks in between.
    /// </summary>
    public static string? Region(FlowGraph graph, List<CollectiveSite>[] sites, int start, int stop, out HashSet<int> nodes, AnalysisLimits limits, AnalysisStats stats) =>
        Region(graph, sites, start, stop, out nodes, depth: 0, limits, stats, new Dictionary<(int, int, int), (string?, HashSet<int>)>());

    // `memo` holds the regions already computed under this top-level call: nested branches ask for the same arms again
    // and again (every round, for every enclosing branch), which is exponential in the nesting without it.
    static string? Region(FlowGraph graph, List<CollectiveSite>[] sites, int start, int stop, out HashSet<int> nodes, int depth,
        AnalysisLimits limits, AnalysisStats stats, Dictionary<(int, int, int), (string?, HashSet<int>)> memo)
    {
        if (memo.TryGetValue((start, stop, depth), out var done))
        {
            nodes = done.Item2;
            return done.Item1;
        }
        var result = Compute(graph, sites, start, stop, out nodes, depth, limits, stats, memo);
        memo[(start, stop, depth)] = (result, nodes);
        return result;
    }

    static string? Compute(FlowGraph graph, List<CollectiveSite>[] sites, int start, int stop, out HashSet<int> nodes, int depth,
        AnalysisLimits limits, AnalysisStats stats, Dictionary<(int, int, int), (string?, HashSet<int>)> memo)
    {
        nodes = new HashSet<int>();
        if (start == stop) return "";
        // Blocks reachable from start without passing stop, in post-order so successors come first.
        var postOrder = new List<int>();
        var stack = new Stack<(int Node, int Next)>();
        nodes.Add(start);
        stack.Push((start, 0));
        while (stack.Count > 0)
        {
            var (node, next) = stack.Pop();
            var successors = graph.Successors[node];
            if (next < successors.Length)
            {
                stack.Push((node, next + 1));
                int s = successors[next];
                if (s != stop && nodes.Add(s)) stack.Push((s, 0));
            }
            else
            {
                postOrder.Add(node);
            }
        }

        var value = new Dictionary<int, string?>();
        var known = new HashSet<int>();
        bool changed = true;
        int rounds = 0;
        while (changed && rounds++ < limits.SequenceRounds)
        {
            changed = false;
            foreach (int node in postOrder)
            {
                bool any = false, invalid = false;
                string? common = null;
                foreach (int s in graph.Successors[node])
                {
                    string? succ;
                    if (s == stop) succ = "";
                    else if (!known.Contains(s)) continue;
                    else succ = value[s];
                    if (succ is null) { invalid = true; break; }
                    if (!any) { common = succ; any = true; }
                    else if (common != succ) { invalid = true; break; }
                }
                if (!any && !invalid && graph.Successors[node].Length > 0) continue; // nothing known below yet
                string? result;
                if (invalid && Structured(graph, sites, node, stop, value, known, depth, limits, stats, memo) is { } structured)
                    result = Concat(Own(sites[node]), structured, limits, stats);
                else
                    result = invalid ? null : Concat(Own(sites[node]), common ?? "", limits, stats);
                if (!known.Contains(node))
                {
                    known.Add(node);
                    value[node] = result;
                    changed = true;
                }
                else if (value[node] is { } old && old != result)
                {
                    // A block seen again with another sequence: its paths disagree (a loop with collectives).
                    value[node] = null;
                    changed = true;
                }
            }
        }
        if (changed) stats.Add(ref stats.SequenceLimits);
        return known.Contains(start) ? value[start] : "";
    }

    /// <summary>
    /// A branch whose successors disagree, written as "{condition: arm | arm}" followed by what comes after the arms
    /// meet, so that two copies of the same rank-uniform branch (inside both arms of an outer branch) still compare
    /// equal. Null for loops (an arm comes back to the branch) and when something below is not yet known.
    /// </summary>
    static string? Structured(FlowGraph graph, List<CollectiveSite>[] sites, int node, int stop,
        Dictionary<int, string?> value, HashSet<int> known, int depth, AnalysisLimits limits, AnalysisStats stats,
        Dictionary<(int, int, int), (string?, HashSet<int>)> memo)
    {
        if (graph.Successors[node].Length < 2) return null;
        if (depth > limits.BranchNesting) { stats.Add(ref stats.SequenceLimits); return null; }
        int meet = graph.ImmediatePostDominator[node];
        if (meet < 0) return null;
        // A loop header: its arms come back to it, so no structured form; say so before walking the arms.
        if (graph.ReachesItself(node, meet)) return null;
        string after;
        if (meet == stop) after = "";
        else if (known.Contains(meet) && value[meet] is { } tail) after = tail;
        else return null;
        var arms = new List<string>();
        foreach (int s in graph.Successors[node])
        {
            var arm = Region(graph, sites, s, meet, out var armNodes, depth + 1, limits, stats, memo);
            if (arm is null || armNodes.Contains(node)) return null;
            arms.Add(arm);
        }
        var condition = graph.Block(node).BranchValue?.Syntax.ToString() ?? "?";
        return Concat("{" + condition + ":" + string.Join("|", arms) + "}", after, limits, stats);
    }

    static string Own(List<CollectiveSite> sites)
    {
        if (sites.Count == 0) return "";
        if (sites.Count == 1) return sites[0].Sequence;
        var parts = new string[sites.Count];
        for (int i = 0; i < parts.Length; i++) parts[i] = sites[i].Sequence;
        return string.Join("\n", parts);
    }

    static string? Concat(string head, string tail, AnalysisLimits limits, AnalysisStats stats)
    {
        if (head.Length == 0) return tail;
        if (tail.Length == 0) return head;
        if (head.Length + tail.Length > limits.SequenceLength) { stats.Add(ref stats.SequenceLimits); return null; }
        return head + "\n" + tail;
    }
}
