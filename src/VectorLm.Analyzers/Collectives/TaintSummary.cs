using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.Collectives;

/// <summary>How a method's effects depend on the rank and on its parameters.</summary>
internal sealed class TaintSummary
{
    /// <summary>Taint of the returned value (and of yielded values).</summary>
    public ulong Return;

    /// <summary>Taint written to each ref/out parameter, by ordinal.</summary>
    public readonly Dictionary<int, ulong> Outs = new();

    /// <summary>Parameters whose value flows into a field of this type, by field.</summary>
    public readonly Dictionary<ISymbol, ulong> FieldWrites = new(SymbolEqualityComparer.Default);

    /// <summary>Parameters that decide which collectives the method performs (a rank-dependent argument deadlocks).</summary>
    public ulong ControlParams;

    /// <summary>A number that grows with every change, to detect the fixed point.</summary>
    public int Version;

    public void OrReturn(ulong taint)
    {
        if ((Return | taint) != Return) { Return |= taint; Version++; }
    }

    public void OrOut(int ordinal, ulong taint)
    {
        Outs.TryGetValue(ordinal, out var old);
        if ((old | taint) != old) { Outs[ordinal] = old | taint; Version++; }
    }

    public void OrFieldWrite(ISymbol field, ulong parameters)
    {
        if (parameters == 0) return;
        FieldWrites.TryGetValue(field, out var old);
        if ((old | parameters) != old) { FieldWrites[field] = old | parameters; Version++; }
    }

    public void OrControl(ulong parameters)
    {
        if ((ControlParams | parameters) != ControlParams) { ControlParams |= parameters; Version++; }
    }
}
