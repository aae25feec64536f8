namespace VectorLm.Generators.Model;

/// <summary>
/// One <c>[DistributedTrainer]</c> class. <see cref="IsValid"/> is false when an analyzer (VLM0001+) rejects it; then
/// only the names are filled, so the entry-point step still sees every trainer of the project.
/// </summary>
/// <param name="Namespace">The containing namespace, empty for the global namespace.</param>
/// <param name="ClassName">The class name.</param>
/// <param name="FullName">Namespace and class name joined by '.', as the VectorLmTrainer property names it.</param>
/// <param name="IsValid">Whether code is generated for it.</param>
/// <param name="Description">The class's XML doc summary, or null.</param>
/// <param name="TrainKind">Which training method it has.</param>
/// <param name="IsDisposable">Whether the trainer implements IDisposable (the generated code disposes it).</param>
/// <param name="Options">The [Option] properties, in declaration order.</param>
internal sealed record TrainerSpec(
    string Namespace,
    string ClassName,
    string FullName,
    bool IsValid,
    string? Description,
    TrainKind TrainKind,
    bool IsDisposable,
    EquatableArray<OptionSpec> Options)
{
    /// <summary>The type as generated code names it: <c>global::Ns.Class</c>.</summary>
    public string GlobalName => "global::" + FullName;
}

/// <summary>The training method a trainer declares.</summary>
internal enum TrainKind
{
    /// <summary><c>void Train(TrainerContext)</c>.</summary>
    Sync,
    /// <summary><c>Task TrainAsync(TrainerContext, CancellationToken)</c>.</summary>
    Async,
    /// <summary><c>void Train(TrainerContext, CancellationToken)</c>.</summary>
    SyncCancellable,
}

/// <summary>An <c>[Option]</c> property.</summary>
/// <param name="PropertyName">The C# property name.</param>
/// <param name="OptionName">The command-line name with its dashes (<c>--sample-every</c>).</param>
/// <param name="TypeName">The fully qualified property type, with nullable annotations.</param>
/// <param name="Description">Help text: the attribute's Description, else the XML doc summary, else null.</param>
/// <param name="NeedsNullForgiving">True for non-nullable reference types, whose parsed value is typed nullable.</param>
internal sealed record OptionSpec(string PropertyName, string OptionName, string TypeName, string? Description, bool NeedsNullForgiving);

/// <summary>The generated <c>Main</c>: which trainer it runs.</summary>
/// <param name="TrainerGlobalName">The trainer as <c>global::Ns.Class</c>.</param>
internal sealed record EntryPointSpec(string TrainerGlobalName);

/// <summary>Project-level inputs of the entry-point decision.</summary>
/// <param name="IsExecutable">True for console and Windows applications.</param>
/// <param name="TrainerChoice">The VectorLmTrainer MSBuild property, or null when unset.</param>
internal sealed record ProjectSettings(bool IsExecutable, string? TrainerChoice);
