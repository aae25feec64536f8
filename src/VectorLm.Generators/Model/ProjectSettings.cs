namespace VectorLm.Generators.Model;

/// <summary>Project-level inputs of the entry-point decision.</summary>
internal sealed record ProjectSettings
{
    /// <summary>True for console and Windows applications.</summary>
    public required bool IsExecutable { get; init; }

    /// <summary>The VectorLmTrainer MSBuild property, or null when unset.</summary>
    public string? TrainerChoice { get; init; }
}
