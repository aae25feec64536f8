namespace VectorLm.Distributed;

/// <summary>A failure of the distributed runtime: rendezvous, a lost peer, a bad argument to a collective.</summary>
public class DistributedException : Exception
{
    /// <summary>Creates the exception with its message.</summary>
    public DistributedException(string message) : base(message) { }

    /// <summary>Creates the exception with its message and cause.</summary>
    public DistributedException(string message, Exception? inner) : base(message, inner) { }
}

/// <summary>
/// Ranks called different collectives, or the same collective with different arguments (tensor shapes, dtypes, roots).
/// Raised on every rank with the same message, which lists what each rank called and where.
/// </summary>
public sealed class CollectiveDesyncException(string message) : DistributedException(message);

/// <summary>Some ranks did not reach a collective within the collective timeout; the message names them.</summary>
public sealed class CollectiveTimeoutException(string message) : DistributedException(message);
