namespace VectorLm.Generators.Model;

/// <summary>
/// One intercepted call site, anywhere in the project. Equality contract: strings, numbers, an enum and an
/// <see cref="EquatableArray{T}"/>, so a file whose calls did not move caches.
/// </summary>
internal sealed record InterceptorSpec
{
    /// <summary>What the call becomes.</summary>
    public required InterceptorKind Kind { get; init; }

    /// <summary>The InterceptsLocation version from Roslyn.</summary>
    public required int Version { get; init; }

    /// <summary>The InterceptsLocation data (file checksum and position) from Roslyn.</summary>
    public required string Data { get; init; }

    /// <summary>file(line,column) of the call, for the comment above the interceptor.</summary>
    public required string DisplayLocation { get; init; }

    /// <summary>The fully qualified type declaring the called method (the interceptor's 'this' type for instance methods).</summary>
    public required string ReceiverType { get; init; }

    /// <summary>The fully qualified return type.</summary>
    public required string ReturnType { get; init; }

    /// <summary>The called method's parameters (the interceptor must match them).</summary>
    public required EquatableArray<ParameterSpec> Parameters { get; init; }

    /// <summary>The member containing the call, as [CallerMemberName] would give it.</summary>
    public required string CallerMember { get; init; }

    /// <summary>The path of the file containing the call.</summary>
    public required string CallerFile { get; init; }

    /// <summary>The 1-based line of the call.</summary>
    public required int CallerLine { get; init; }
}
