namespace VectorLm.Generators.Model;

/// <summary>A parameter of an intercepted method.</summary>
internal sealed record ParameterSpec
{
    /// <summary>The parameter name.</summary>
    public required string Name { get; init; }

    /// <summary>The fully qualified type, with nullable annotations.</summary>
    public required string TypeName { get; init; }
}
