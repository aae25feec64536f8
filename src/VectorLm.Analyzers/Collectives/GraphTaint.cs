using System.Collections.Generic;
using Microsoft.CodeAnalysis.Operations;

namespace VectorLm.Analyzers.Collectives;

/// <summary>The taint facts of one graph at the fixed point, used to find rank-dependent branches.</summary>
internal sealed class GraphTaint
{
    public GraphTaint(int blocks)
    {
        Condition = new ulong[blocks];
        Control = new ulong[blocks];
    }

    /// <summary>Taint of each block's branch condition.</summary>
    public ulong[] Condition { get; }

    /// <summary>Taint each block inherits from the conditions it is control dependent on (implicit flow).</summary>
    public ulong[] Control { get; set; }

    /// <summary>Taint of the arguments of calls that are not library calls, for arguments that carry any (the checks read no others).</summary>
    public Dictionary<IArgumentOperation, ulong> Arguments { get; } = new();
}
