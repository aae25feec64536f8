namespace VectorLm.Generators.Model;

/// <summary>
/// One <c>[DistributedTrainer]</c> class. <see cref="IsValid"/> is false when an analyzer (VLM0001+) rejects it; then
/// only the names are filled, so the entry-point step still sees every trainer of the project.
/// </summary>
/// <remarks>
/// Equality contract: value equality over strings, enums and <see cref="EquatableArray{T}"/>s, never symbols or syntax,
/// so an unchanged trainer caches in the incremental pipeline (IncrementalTests checks it).
/// </remarks>
internal sealed record TrainerSpec
{
    /// <summary>The containing namespace, empty for the global namespace.</summary>
    public required string Namespace { get; init; }

    /// <summary>The class name.</summary>
    public required string ClassName { get; init; }

    /// <summary>Namespace and class name joined by '.', as the VectorLmTrainer property names it.</summary>
    public required string FullName { get; init; }

    /// <summary>Whether code is generated for it.</summary>
    public required bool IsValid { get; init; }

    /// <summary>The class's XML doc summary, or null.</summary>
    public string? Description { get; init; }

    /// <summary>Which training method it has.</summary>
    public TrainKind TrainKind { get; init; }

    /// <summary>Whether the trainer implements IDisposable (the generated code disposes it).</summary>
    public bool IsDisposable { get; init; }

    /// <summary>The [Option] properties, in declaration order.</summary>
    public EquatableArray<OptionSpec> Options { get; init; }

    /// <summary>The type as generated code names it: <c>global::Ns.Class</c>.</summary>
    public string GlobalName => "global::" + FullName;
}
