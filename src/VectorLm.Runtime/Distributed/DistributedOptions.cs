using System.Globalization;

namespace VectorLm.Distributed;

/// <summary>How a rank joins its job: backend and timeouts. Unset values come from the environment, then defaults.</summary>
public sealed record DistributedOptions
{
    /// <summary>The process group to form; <see cref="DistributedBackend.Auto"/> picks nccl on CUDA, else tcp.</summary>
    public DistributedBackend Backend { get; init; } = DistributedBackend.Auto;

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

    /// <summary>
    /// Let rank 0's rendezvous store and every rank's listener accept connections on all network interfaces, not only
    /// on MASTER_ADDR's (rank 0) or the address the rank advertises (the others). Needed when MASTER_ADDR names an
    /// address other nodes reach through NAT or a different interface. Default: <c>VECTORLM_BIND_ALL=1</c>, else false.
    /// </summary>
    public bool? BindAllInterfaces { get; init; }

    /// <summary>
    /// Stops the collectives: once cancelled, a collective waiting for other ranks (or called later) throws
    /// <see cref="OperationCanceledException"/>, and the group is closed. The generated <c>Run</c> passes the token
    /// that SIGINT and SIGTERM cancel.
    /// </summary>
    public CancellationToken Cancellation { get; init; }

    /// <summary>
    /// Environment variable holding the job token: a secret every connection to the store and between ranks must
    /// present. The VectorLm launcher makes a random one for its ranks; under torchrun or Slurm set it yourself (the same
    /// on every rank, e.g. <c>export VECTORLM_JOB_TOKEN=$(openssl rand -hex 16)</c>). Without it the store admits any
    /// VectorLm client and says so once at start.
    /// </summary>
    public const string JobTokenVariable = "VECTORLM_JOB_TOKEN";

    /// <summary>Environment variable for <see cref="BindAllInterfaces"/>.</summary>
    public const string BindAllVariable = "VECTORLM_BIND_ALL";

    /// <summary>Environment variable for <see cref="CollectiveTimeout"/>.</summary>
    public const string CollectiveTimeoutVariable = "VECTORLM_COLLECTIVE_TIMEOUT";

    /// <summary>Environment variable for <see cref="RendezvousTimeout"/>.</summary>
    public const string RendezvousTimeoutVariable = "VECTORLM_RENDEZVOUS_TIMEOUT";

    /// <summary>Environment variable for <see cref="DesyncDebug"/>.</summary>
    public const string DesyncDebugVariable = "VECTORLM_DESYNC_DEBUG";

    internal TimeSpan ResolveCollectiveTimeout() => CollectiveTimeout ?? Seconds(CollectiveTimeoutVariable) ?? TimeSpan.FromMinutes(10);

    internal TimeSpan ResolveRendezvousTimeout() => RendezvousTimeout ?? Seconds(RendezvousTimeoutVariable) ?? TimeSpan.FromMinutes(5);

    internal JobSecurity ResolveSecurity() => new(
        Environment.GetEnvironmentVariable(JobTokenVariable) is { Length: > 0 } token ? token : null,
        BindAllInterfaces ?? Environment.GetEnvironmentVariable(BindAllVariable) is "1" or "true");

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
