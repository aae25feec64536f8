namespace VectorLm.Testing;

/// <summary>
/// Generated code or diagnostics differ from the committed baselines. The message lists each difference with a
/// unified diff and says how to accept the new output.
/// </summary>
public sealed class BaselineMismatchException : Exception
{
    /// <summary>Creates the exception with the differences as its message.</summary>
    public BaselineMismatchException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception without a message.</summary>
    public BaselineMismatchException() : this("Generated code differs from its baselines.")
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public BaselineMismatchException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
