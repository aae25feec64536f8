namespace VectorLm.Bench;

/// <summary>One named benchmark of `dotnet run -c Release --project bench/VectorLm.Bench -- NAME`.</summary>
/// <remarks>Each benchmark lives in its own file and is found by reflection, so adding one touches nothing else.</remarks>
public interface IBenchmark
{
    /// <summary>The command-line name, also the file name under bench/results.</summary>
    string Name { get; }

    /// <summary>One line for the list of benchmarks.</summary>
    string Description { get; }

    /// <summary>Measures and returns the report; <paramref name="args"/> are the arguments after the name.</summary>
    BenchReport Run(string[] args);
}
