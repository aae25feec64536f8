using System.Collections;
using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace VectorLm.Hosting.CommandLine;

/// <summary>
/// Checks an option's value against the <see cref="ValidationAttribute"/>s of its <c>[Option]</c> property (the
/// generated code passes them to <see cref="TrainerCommandLine.AddOption{T}"/>) and words what fails with the option's
/// name, the constraint and the value.
/// </summary>
/// <remarks>
/// The attributes decide (<see cref="ValidationAttribute.GetValidationResult"/>), so any attribute works, a user's own
/// included; the known ones get messages written for a command line. On an array option the value constraints
/// (<see cref="RangeAttribute"/>, <see cref="RegularExpressionAttribute"/>, <see cref="AllowedValuesAttribute"/>,
/// <see cref="DeniedValuesAttribute"/>, <see cref="MustExistAttribute"/>) apply to each element; the others (lengths,
/// <see cref="RequiredAttribute"/>) to the array. An attribute with its own <c>ErrorMessage</c> keeps it.
/// </remarks>
internal static class OptionValidation
{
    /// <summary>The problems of <paramref name="value"/>, one message per failed constraint.</summary>
    public static IEnumerable<string> Problems(string optionName, object? value, IReadOnlyList<ValidationAttribute> constraints)
    {
        foreach (var constraint in constraints)
        {
            if (value is Array array and not char[] && AppliesPerElement(constraint))
            {
                for (var i = 0; i < array.Length; i++)
                    if (Problem(optionName, array.GetValue(i), constraint) is { } problem) yield return problem;
            }
            else if (Problem(optionName, value, constraint) is { } problem)
            {
                yield return problem;
            }
        }
    }

    /// <summary>The help text with the constraints help can say briefly appended: <c>Optimizer steps. (1 to 100000)</c>.</summary>
    public static string? WithConstraints(string? description, IReadOnlyList<ValidationAttribute> constraints)
    {
        var notes = constraints.Select(c => c switch
        {
            RangeAttribute range => RangeText(range),
            RequiredAttribute => "required",
            AllowedValuesAttribute allowed => "one of " + List(allowed.Values),
            MustExistAttribute => "must exist",
            _ => null,
        }).OfType<string>().ToList();
        if (notes.Count == 0) return description;
        var note = "(" + string.Join("; ", notes) + ")";
        return string.IsNullOrWhiteSpace(description) ? note : description.TrimEnd() + " " + note;
    }

    // AllowedValues and DeniedValues set ErrorMessage themselves; only a message other than theirs is the user's.
    static readonly string? s_allowedValuesMessage = new AllowedValuesAttribute().ErrorMessage;
    static readonly string? s_deniedValuesMessage = new DeniedValuesAttribute().ErrorMessage;

    static bool HasOwnMessage(ValidationAttribute constraint) =>
        constraint.ErrorMessageResourceType is not null
        || (constraint.ErrorMessage is { } message && constraint switch
        {
            AllowedValuesAttribute => message != s_allowedValuesMessage,
            DeniedValuesAttribute => message != s_deniedValuesMessage,
            _ => true,
        });

    static bool AppliesPerElement(ValidationAttribute constraint) =>
        constraint is RangeAttribute or RegularExpressionAttribute or AllowedValuesAttribute or DeniedValuesAttribute or MustExistAttribute;

    static string? Problem(string optionName, object? value, ValidationAttribute constraint)
    {
        ValidationResult? result;
        try
        {
            result = constraint.GetValidationResult(value, new ValidationContext(value ?? optionName) { DisplayName = optionName });
        }
        catch (Exception e) when (e is InvalidOperationException or InvalidCastException or FormatException or OverflowException or NotSupportedException or ArgumentException)
        {
            // A constraint that does not fit the option's type (e.g. [Range(1, 10)] on a string); the attribute says why.
            return $"{optionName}: cannot check [{ShortName(constraint)}] against {Show(value)}: {e.Message}";
        }
        if (result == ValidationResult.Success) return null;
        if (HasOwnMessage(constraint)) return constraint.FormatErrorMessage(optionName);
        return Describe(optionName, value, constraint) ?? $"{optionName}: {result?.ErrorMessage} (got {Show(value)})";
    }

    // Command-line wording for the constraints VectorLm documents; null for the others (their own message is used).
    static string? Describe(string name, object? value, ValidationAttribute constraint) => constraint switch
    {
        RangeAttribute range => $"{name} must be {RangeText(range)}, got {Show(value)}.",
        RequiredAttribute => $"{name} is required: give it on the command line or in the --config file.",
        RegularExpressionAttribute regex => $"{name} must match the pattern '{regex.Pattern}', got {Show(value)}.",
        AllowedValuesAttribute allowed => $"{name} must be one of {List(allowed.Values)}, got {Show(value)}.",
        DeniedValuesAttribute denied => $"{name} must not be one of {List(denied.Values)}, got {Show(value)}.",
        LengthAttribute length => $"{name} must have {Between(length.MinimumLength, length.MaximumLength)} {Unit(value)}, got {Count(value)}.",
        StringLengthAttribute length => $"{name} must have {Between(length.MinimumLength, length.MaximumLength)} {Unit(value)}, got {Count(value)}.",
        MinLengthAttribute min => $"{name} must have at least {Number(min.Length)} {Unit(value)}, got {Count(value)}.",
        MaxLengthAttribute max => $"{name} must have at most {Number(max.Length)} {Unit(value)}, got {Count(value)}.",
        MustExistAttribute => $"{name} must name an existing {MustExistAttribute.KindOf(value)}; '{MustExistAttribute.PathOf(value)}' does not exist.",
        _ => null,
    };

    static string RangeText(RangeAttribute range)
    {
        var noMaximum = IsUnbounded(range.Maximum, positive: true);
        var noMinimum = IsUnbounded(range.Minimum, positive: false);
        var low = (range.MinimumIsExclusive ? "greater than " : "at least ") + Show(range.Minimum);
        var high = (range.MaximumIsExclusive ? "less than " : "at most ") + Show(range.Maximum);
        if (noMaximum && !noMinimum) return low;
        if (noMinimum && !noMaximum) return high;
        if (!range.MinimumIsExclusive && !range.MaximumIsExclusive) return $"between {Show(range.Minimum)} and {Show(range.Maximum)}";
        return $"{low} and {high}";
    }

    // [Range(1, int.MaxValue)] reads as "at least 1".
    static bool IsUnbounded(object bound, bool positive) => bound switch
    {
        int i => i == (positive ? int.MaxValue : int.MinValue),
        double d => positive ? d is double.MaxValue or double.PositiveInfinity : d is double.MinValue or double.NegativeInfinity,
        _ => false,
    };

    static string Between(int minimum, int maximum) =>
        minimum <= 0 ? $"at most {Number(maximum)}"
        : maximum == int.MaxValue || maximum < 0 ? $"at least {Number(minimum)}"
        : $"between {Number(minimum)} and {Number(maximum)}";

    static string Unit(object? value) => value is string ? "characters" : "items";

    static string Count(object? value) => value switch
    {
        null => "none",
        string s => Number(s.Length),
        ICollection c => Number(c.Count),
        _ => Show(value),
    };

    static string List(object?[] values) => string.Join(", ", values.Select(Show));

    static string Number(int n) => n.ToString(CultureInfo.InvariantCulture);

    static string ShortName(Attribute attribute)
    {
        var name = attribute.GetType().Name;
        return name.EndsWith("Attribute", StringComparison.Ordinal) ? name[..^"Attribute".Length] : name;
    }

    /// <summary>A value as the user typed it: strings quoted, numbers invariant, arrays in brackets.</summary>
    internal static string Show(object? value) => value switch
    {
        null => "nothing",
        string s => $"'{s}'",
        FileSystemInfo f => $"'{f.ToString()}'",
        Array a => "[" + string.Join(", ", a.Cast<object?>().Select(Show)) + "]",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
