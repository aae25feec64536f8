using System.Globalization;
using VectorLm.Data;

namespace VectorLm.Samples;

/// <summary>
/// A synthetic task for the samples, tests and benchmarks: additions written as <c>"12+7="</c> with completion
/// <c>"19"</c>. Deterministic for a seed. Not part of the library: each project compiles this file in
/// (samples/Shared/SampleTasks.props).
/// </summary>
internal static class ArithmeticTask
{
    /// <summary><paramref name="count"/> additions of operands in [0, <paramref name="maxOperand"/>].</summary>
    public static IReadOnlyList<PromptCompletion> Generate(int count, int seed = 0, int maxOperand = 99)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfNegative(maxOperand);
        var rng = new Random(seed);
        var list = new List<PromptCompletion>(count);
        for (int i = 0; i < count; i++)
        {
            int a = rng.Next(maxOperand + 1), b = rng.Next(maxOperand + 1);
            list.Add(new PromptCompletion(
                string.Create(CultureInfo.InvariantCulture, $"{a}+{b}="),
                (a + b).ToString(CultureInfo.InvariantCulture)));
        }
        return list;
    }

    /// <summary>Whether <paramref name="completion"/> is the right answer to <paramref name="prompt"/> (leading digits of the completion count).</summary>
    public static bool IsCorrect(string prompt, string completion)
    {
        var parts = prompt.TrimEnd('=').Split('+');
        if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out int a) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out int b))
            throw new ArgumentException($"not an addition prompt: \"{prompt}\"", nameof(prompt));
        string digits = new(completion.TakeWhile(char.IsAsciiDigit).ToArray());
        return digits == (a + b).ToString(CultureInfo.InvariantCulture);
    }
}
