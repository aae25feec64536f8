using System.Globalization;

namespace VectorLm.Distributed;

/// <summary>How a rank joins its job: backend and timeouts. Unset values come from the environment, then defaults.</summary>
public sealed record DistributedOptions
{
    /// <summary>"auto" (nccl when the device is CUDA, else tcp), "tcp" or "nccl".</summary>
    public string Backend { get; init; } = "auto";

    /// <summary>
    /// How long a collective waits for the other ranks before failing with the names of those missing.
    /// Default: <c>VECTORLM_COLLECTIVE_TIMEOUT</c> (seconds) or 10 minutes.
    /// </summary>
    public TimeSpan? CollectiveTimeout { get; init; }

    /// <summary>How long joining waits for the store and the other ranks. Default: <c>VECTORLM_RENDEZVOUS_TIMEOUT</c> (seconds) or 5 minutes.</summary>
    public TimeSpan? RendezvousTimeout { get; init; }

    /// <summary>
    /// Compare collective fingerprints on the nccl backend too (one small tcp round per collective).
    /// Default: <c>VECTORLM_DESYNC_DEBUG=1</c>. The tcp backend always compares them.
    /// </summary>
    public bool? DesyncDebug { get; init; }

    /// <summary>Environment variable for <see cref="CollectiveTimeout"/>.</summary>
    public const string CollectiveTimeoutVariable = "VECTORLM_COLLECTIVE_TIMEOUT";

    /// <summary>Environment variable for <see cref="RendezvousTimeout"/>.</summary>
    public const string RendezvousTimeoutVariable = "VECTORLM_RENDEZVOUS_TIMEOUT";

    /// <summary>Environment variable for <see cref="DesyncDebug"/>.</summary>
    public const string DesyncDebugVariable = "VECTORLM_DESYNC_DEBUG";

    internal TimeSpan ResolveCollectiveTimeout() => CollectiveTimeout ?? Seconds(CollectiveTimeoutVariable) ?? TimeSpan.FromMinutes(10);

    internal TimeSpan ResolveRendezvousTimeout() => RendezvousTimeout ?? Seconds(RendezvousTimeoutVariable) ?? TimeSpan.FromMinutes(5);

    internal bool ResolveDesyncDebug() => DesyncDebug ?? Environment.GetEnvironmentVariable(DesyncDebugVariable) is "1" or "true";

    static TimeSpan? Seconds(string variable)
    {
        var text = Environment.GetEnvironmentVariable(variable);
        if (string.IsNullOrEmpty(text)) return null;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || s <= 0 || double.IsInfinity(s))
            throw new DistributedException($"{variable}='{text}' must be a positive number of seconds");
        return TimeSpan.FromSeconds(s);
    }
}
