using System;

namespace Samples.Custom;

/// <summary>The user's own entry point: the generator must not add a Main.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        Console.WriteLine("custom start");
        return CustomTrainer.Run(args);
    }
}
