namespace VectorLm.Generators.Model;

/// <summary>The generated <c>Main</c>: which trainer it runs.</summary>
internal sealed record EntryPointSpec
{
    /// <summary>The trainer as <c>global::Ns.Class</c>.</summary>
    public required string TrainerGlobalName { get; init; }
}
