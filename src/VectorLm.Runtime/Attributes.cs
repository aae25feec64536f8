// Also compiled into the analyzers and the source generator (netstandard2.0): there the attributes are internal and live
// in another namespace, so they never clash with these when a test references those assemblies; they only lend their
// names to nameof, so the rules match the attributes and their named arguments without string literals.
using System;

#if NETSTANDARD2_0
namespace VectorLm.Analyzers.Shared;
#else
namespace VectorLm;
#endif

/// <summary>
/// Marks a member that every rank must call the same number of times and in the same order
/// (a barrier, an all-reduce, a distributed <c>Generate</c>...). The VectorLm analyzer reports a
/// collective reached only on a rank-dependent path, which would deadlock at run time.
/// </summary>
[AttributeUsage(AttributeTargets.Method | AttributeTargets.Constructor, Inherited = true)]
#if NETSTANDARD2_0
internal
#else
public
#endif
sealed class CollectiveAttribute : Attribute;

/// <summary>Marks a member whose value differs between ranks (<c>Rank</c>, <c>LocalRank</c>, <c>IsMainRank</c>).</summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Method | AttributeTargets.Field, Inherited = true)]
#if NETSTANDARD2_0
internal
#else
public
#endif
sealed class RankDependentAttribute : Attribute;

/// <summary>
/// Marks a member whose result is equal on every rank (the results of <c>AllReduce</c>, <c>Broadcast</c>, <c>BroadcastObject</c>,
/// <c>AllGather</c>, <c>AllGatherObject</c>; <c>WorldSize</c>). The analyzer treats such values as untainted even when their inputs were.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Method | AttributeTargets.Field | AttributeTargets.ReturnValue, Inherited = true)]
#if NETSTANDARD2_0
internal
#else
public
#endif
sealed class RankUniformAttribute : Attribute;

/// <summary>
/// Marks a partial class with a <c>void Train(TrainerContext)</c> or
/// <c>Task TrainAsync(TrainerContext, CancellationToken)</c> method. The VectorLm source generator emits the entry
/// point, command line, rank fan-out, barriers and weight synchronisation so the one-device loop runs on N ranks.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
#if NETSTANDARD2_0
internal
#else
public
#endif
sealed class DistributedTrainerAttribute : Attribute;

/// <summary>
/// Exposes a settable property of a <see cref="DistributedTrainerAttribute"/> class as a command-line option
/// (kebab-case name, default from the initializer, description from the XML doc comment) and a YAML config key.
/// </summary>
[AttributeUsage(AttributeTargets.Property, Inherited = false)]
#if NETSTANDARD2_0
internal
#else
public
#endif
sealed class OptionAttribute : Attribute
{
    /// <summary>Overrides the option name (without leading dashes). Defaults to the property name in kebab case.</summary>
    public string? Name { get; init; }

    /// <summary>Overrides the description. Defaults to the property's XML doc summary.</summary>
    public string? Description { get; init; }
}
