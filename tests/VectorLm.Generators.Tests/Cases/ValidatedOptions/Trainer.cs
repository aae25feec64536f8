using System;
using System.ComponentModel.DataAnnotations;
using System.IO;
using VectorLm;

namespace Samples.Validated
{
    /// <summary>How samples are drawn.</summary>
    public enum Decoding
    {
        Greedy,
        Sample,
    }

    /// <summary>A user's own constraint: any ValidationAttribute works.</summary>
    public sealed class EvenAttribute : ValidationAttribute
    {
        public override bool IsValid(object? value) => value is int i && i % 2 == 0;
    }

    /// <summary>Every kind of constraint an option can carry, with every kind of attribute argument.</summary>
    [DistributedTrainer]
    public partial class ValidatedOptions
    {
        [Option, Range(1, 100_000)] public int Steps { get; init; } = 300;
        [Option, Range(0.0, 1.0, MinimumIsExclusive = true, ErrorMessage = "{0} is a fraction in (0, 1]")] public double Fraction { get; init; } = 0.5;
        [Option, Range(typeof(decimal), "0.01", "9.99")] public decimal Price { get; init; } = 1m;
        [Option, Range(1L, 5_000_000_000L)] public long Tokens { get; init; } = 1_000;
        [Option, Range(0.5f, 2f)] public float Scale { get; init; } = 1f;
        [Option, Required, MustExist] public string Model { get; init; } = "";
        [Option, MustExist] public FileInfo? Dataset { get; init; }
        [Option, MustExist] public DirectoryInfo? OutputDir { get; init; }
        [Option, RegularExpression("^[a-z0-9-]+$")] public string RunName { get; init; } = "run";
        [Option, AllowedValues("cpu", "cuda", null)] public string? Device { get; init; }
        [Option, AllowedValues(1, 2L, 4.0, 'x', (byte)8, Decoding.Sample, true)] public int Mixed { get; init; } = 1;
        [Option, AllowedValues(Decoding.Greedy)] public Decoding Decoding { get; init; } = Decoding.Greedy;
        [Option, DeniedValues("mps")] public string Accelerator { get; init; } = "cpu";
        [Option, Length(1, 8), Range(1, 1000)] public int[] EvalSteps { get; init; } = [10];
        [Option, MinLength(1), MaxLength(4)] public string[] Prompts { get; init; } = ["1+1="];
        [Option, StringLength(16, MinimumLength = 2)] public string Tag { get; init; } = "tag";
        [Option, Even] public int Heads { get; init; } = 4;
        [Option, Range(double.NegativeInfinity, 0.0)] public double LogProb { get; init; } = -1.0;
        [Option, AllowedValues(-3, (short)-3, (sbyte)-1, 7u, 9UL, (ushort)2, float.PositiveInfinity, double.NaN, -2.5f, typeof(int), new[] { 1, 2 })] public int Odd { get; init; } = -3;
        [Option, Range(typeof(TimeSpan), "00:00:01", "01:00:00")] public TimeSpan CheckpointEvery { get; init; } = TimeSpan.FromMinutes(5);

        public void Train(TrainerContext ctx)
        {
        }
    }
}
