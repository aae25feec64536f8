namespace VectorLm.Generators.Model;

/// <summary>An <c>[Option]</c> property. Equality contract: strings and an <see cref="EquatableArray{T}"/> only.</summary>
internal sealed record OptionSpec
{
    /// <summary>The C# property name.</summary>
    public required string PropertyName { get; init; }

    /// <summary>The command-line name with its dashes (<c>--sample-every</c>).</summary>
    public required string OptionName { get; init; }

    /// <summary>The fully qualified property type, with nullable annotations.</summary>
    public required string TypeName { get; init; }

    /// <summary>Help text: the attribute's Description, else the XML doc summary, else null.</summary>
    public string? Description { get; init; }

    /// <summary>
    /// C# expressions recreating the property's validation attributes (<c>new global::...RangeAttribute(1, 100)</c>),
    /// in declaration order; the runtime checks every value against them.
    /// </summary>
    public EquatableArray<string> Constraints { get; init; }
}
