namespace VectorLm.Analyzers.Collectives;

/// <summary>
/// Rank taint as a bit set: bit 0 means "differs between ranks"; bit i+1 means "depends on parameter i" of the function
/// being analysed, which lets a summary say how a call's result depends on its arguments.
/// </summary>
internal static class Taint
{
    public const ulong Rank = 1;
    public const ulong Params = ~Rank;
    const int MaxParameter = 62;

    public static ulong Parameter(int ordinal) => ordinal < MaxParameter ? 1UL << (ordinal + 1) : 0;

    public static bool HasParameter(ulong taint, int ordinal) => ordinal < MaxParameter && (taint & (1UL << (ordinal + 1))) != 0;
}
