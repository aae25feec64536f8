using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace VectorLm.Analyzers.Collectives;

/// <summary>Flow-insensitive taint of the locals that nested functions of one body capture.</summary>
internal sealed class UnitState
{
    readonly Dictionary<ISymbol, ulong> _values = new(SymbolEqualityComparer.Default);

    public UnitState(BodyUnit unit) => Unit = unit;

    public BodyUnit Unit { get; }

    public HashSet<ISymbol> Captured => Unit.Captured;

    public int Version { get; private set; }

    public ulong Get(ISymbol symbol) => _values.TryGetValue(symbol, out var v) ? v : 0;

    public void Or(ISymbol symbol, ulong value)
    {
        var old = Get(symbol);
        if ((old | value) != old) { _values[symbol] = old | value; Version++; }
    }
}
