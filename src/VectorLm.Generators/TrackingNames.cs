namespace VectorLm.Generators;

/// <summary>Names of the tracked pipeline steps, for the incremental-caching tests.</summary>
public static class TrackingNames
{
    /// <summary>Every <c>[DistributedTrainer]</c> class parsed into a model (valid or not).</summary>
    public const string Trainers = nameof(Trainers);
    /// <summary>The trainers the analyzers accept; the generator emits these.</summary>
    public const string ValidTrainers = nameof(ValidTrainers);
    /// <summary>Whether the user's source declares its own entry point.</summary>
    public const string UserEntryPoint = nameof(UserEntryPoint);
    /// <summary>Project settings: output kind and the VectorLmTrainer property.</summary>
    public const string ProjectSettings = nameof(ProjectSettings);
    /// <summary>The interceptable collective calls of each file that has any.</summary>
    public const string CallSites = nameof(CallSites);
    /// <summary>All interceptable calls of the project, in file order (the interceptors file).</summary>
    public const string Interceptors = nameof(Interceptors);
    /// <summary>The generated <c>Main</c>, if any.</summary>
    public const string EntryPoint = nameof(EntryPoint);
}
