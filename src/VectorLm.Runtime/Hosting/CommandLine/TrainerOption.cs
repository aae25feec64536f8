using System.CommandLine;
using System.ComponentModel;

namespace VectorLm.Hosting.CommandLine;

/// <summary>
/// One option of a generated trainer command line, returned by <see cref="TrainerCommandLine.AddOption{T}"/> and read
/// back with <see cref="TrainerArguments.GetValue{T}"/>. Only generated code uses it.
/// </summary>
/// <typeparam name="T">The option's value type: the <c>[Option]</c> property's type.</typeparam>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class TrainerOption<T>
{
    internal TrainerOption(Option<T> symbol) => Symbol = symbol;

    /// <summary>The System.CommandLine option behind it; kept internal so the parser library stays out of the public API.</summary>
    internal Option<T> Symbol { get; }

    /// <summary>The option name with its dashes (<c>--steps</c>).</summary>
    public string Name => Symbol.Name;
}
