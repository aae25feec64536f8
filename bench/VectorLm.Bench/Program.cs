using VectorLm.Bench;

var benchmarks = typeof(IBenchmark).Assembly.GetTypes()
    .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
    .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
    .OrderBy(b => b.Name, StringComparer.Ordinal)
    .ToList();

if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: dotnet run -c Release --project bench/VectorLm.Bench -- <name> [args]");
    foreach (var b in benchmarks) Console.WriteLine($"  {b.Name,-14} {b.Description}");
    return args.Length == 0 ? 1 : 0;
}

var bench = benchmarks.FirstOrDefault(b => b.Name == args[0]);
if (bench is null)
{
    Console.Error.WriteLine($"unknown benchmark '{args[0]}'; known: {string.Join(", ", benchmarks.Select(b => b.Name))}");
    return 2;
}

var report = bench.Run(args[1..]);
report.Print();
string resultsDir = Environment.GetEnvironmentVariable("VECTORLM_BENCH_RESULTS") ?? FindResultsDir();
Console.WriteLine($"wrote {report.Save(resultsDir)}");
return 0;

// bench/results of the repository this program was built from, wherever it is run.
static string FindResultsDir()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln")))
            return Path.Combine(dir.FullName, "bench", "results");
    return Path.Combine(Directory.GetCurrentDirectory(), "bench", "results");
}
