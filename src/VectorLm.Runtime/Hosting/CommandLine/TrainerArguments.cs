using System.CommandLine;
using System.ComponentModel;

namespace VectorLm.Hosting.CommandLine;

/// <summary>
/// A parsed trainer command line (with the <c>--config</c> file merged in): the values of the trainer's options, the
/// launch options, and the errors. Only generated code and tests use it.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class TrainerArguments
{
    readonly ParseResult _result;
    readonly LaunchOptions? _launch;

    internal TrainerArguments(ParseResult result, IReadOnlyList<string> errors, LaunchOptions? launch)
    {
        _result = result;
        Errors = errors;
        _launch = launch;
    }

    /// <summary>What is wrong with the arguments or the config file, one message each; empty when they are valid.</summary>
    public IReadOnlyList<string> Errors { get; }

    /// <summary>The launch options (<c>--nproc-per-node</c>, <c>--backend</c>, ...).</summary>
    /// <exception cref="InvalidOperationException">The arguments have <see cref="Errors"/>.</exception>
    public LaunchOptions Launch => _launch ?? throw new InvalidOperationException(
        "The command line has errors, so it has no launch options: " + string.Join(" ", Errors));

    /// <summary>The value of <paramref name="option"/>: from the command line, else the config file, else its default.</summary>
    public T GetValue<T>(TrainerOption<T> option)
    {
        ArgumentNullException.ThrowIfNull(option);
        // Every trainer option has a default (the property initializer), so the value is null only if that is.
        return _result.GetValue(option.Symbol)!;
    }
}
