using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.Collectives;
using VectorLm.Analyzers.TrainerShape;

namespace VectorLm.Bench;

/// <summary>
/// Cost of the collective deadlock analyzer (VLM1001-VLM1003) on a generated project of about 50,000 lines with
/// hundreds of trainer methods: compile time with the analyzer over compile time without it, measured side by side
/// (alternating runs, fresh compilation each time). Arguments: [classes] [repetitions].
/// </summary>
public sealed class AnalyzerBenchmark : IBenchmark
{
    public string Name => "analyzer";

    public string Description => "deadlock analyzer cost on a generated ~50k-line trainer project (ratio to plain compile)";

    public BenchReport Run(string[] args)
    {
        string loadAtStart = BenchReport.LoadAverage();
        int classes = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 93;
        int repetitions = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3;
        const int methodsPerClass = 10;

        var trees = Enumerable.Range(0, classes)
            .Select(i => CSharpSyntaxTree.ParseText(TrainerSource(i, methodsPerClass), CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Preview), path: $"Trainer{i}.cs"))
            .ToImmutableArray();
        int lines = trees.Sum(t => t.GetText().Lines.Count);
        var references = References();
        var options = new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable);
        CSharpCompilation Fresh() => CSharpCompilation.Create("Generated", trees, references, options);

        var deadlock = ImmutableArray.Create<DiagnosticAnalyzer>(new CollectiveDeadlockAnalyzer());
        // What a package user's csc runs: both VectorLm analyzers. The trainer-shape analyzer's operation actions make
        // the driver bind every body, which the deadlock analyzer then shares through the driver's semantic models.
        var shape = ImmutableArray.Create<DiagnosticAnalyzer>(new TrainerShapeAnalyzer());
        var both = ImmutableArray.Create<DiagnosticAnalyzer>(new TrainerShapeAnalyzer(), new CollectiveDeadlockAnalyzer());
        int expectedFindings = Enumerable.Range(0, classes * methodsPerClass).Count(k => k % 3 == 0);

        // Plain compile: bind everything and emit. With the analyzer: the same, plus the analyzer as csc runs it.
        var process = Process.GetCurrentProcess();
        double Cpu() { process.Refresh(); return process.TotalProcessorTime.TotalMilliseconds; }
        (double Wall, double Cpu) Plain()
        {
            double cpu0 = Cpu();
            var watch = Stopwatch.StartNew();
            var compilation = Fresh();
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            if (errors.Count > 0) throw new InvalidOperationException("generated project does not compile: " + errors[0]);
            using var stream = new MemoryStream();
            compilation.Emit(stream);
            return (watch.Elapsed.TotalMilliseconds, Cpu() - cpu0);
        }
        (double Wall, double Cpu, int Findings) WithAnalyzer(bool concurrent, ImmutableArray<DiagnosticAnalyzer>? set = null)
        {
            var analyzers = set ?? deadlock;
            double cpu0 = Cpu();
            var watch = Stopwatch.StartNew();
            var compilation = Fresh();
            var withAnalyzers = compilation.WithAnalyzers(analyzers, new CompilationWithAnalyzersOptions(
                new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty), onAnalyzerException: null,
                concurrentAnalysis: concurrent, logAnalyzerExecutionTime: false));
            var diagnostics = withAnalyzers.GetAllDiagnosticsAsync().GetAwaiter().GetResult();
            if (diagnostics.Any(d => d.Id == "AD0001")) throw new InvalidOperationException("analyzer crashed: " + diagnostics.First(d => d.Id == "AD0001"));
            using var stream = new MemoryStream();
            compilation.Emit(stream);
            return (watch.Elapsed.TotalMilliseconds, Cpu() - cpu0, diagnostics.Count(d => d.Id.StartsWith("VLM1", StringComparison.Ordinal)));
        }

        // Warm-up (JIT, metadata), then alternate so that machine noise hits both sides alike.
        Plain();
        var warm = WithAnalyzer(true);
        if (warm.Findings != expectedFindings)
            throw new InvalidOperationException($"expected {expectedFindings} findings in the generated project, got {warm.Findings}");
        var plain = new List<(double Wall, double Cpu)>();
        var concurrentRuns = new List<(double Wall, double Cpu)>();
        var sequentialRuns = new List<(double Wall, double Cpu)>();
        var shapeRuns = new List<(double Wall, double Cpu)>();
        var bothRuns = new List<(double Wall, double Cpu)>();
        int bothFindings = 0;
        for (int r = 0; r < repetitions; r++)
        {
            plain.Add(Plain());
            var c = WithAnalyzer(true);
            concurrentRuns.Add((c.Wall, c.Cpu));
            var q = WithAnalyzer(false);
            sequentialRuns.Add((q.Wall, q.Cpu));
            var t = WithAnalyzer(true, shape);
            shapeRuns.Add((t.Wall, t.Cpu));
            var b = WithAnalyzer(true, both);
            bothRuns.Add((b.Wall, b.Cpu));
            bothFindings = b.Findings;
        }

        double plainWall = Median(plain.Select(x => x.Wall)), plainCpu = Median(plain.Select(x => x.Cpu)), plainMinCpu = plain.Min(x => x.Cpu);
        var report = new BenchReport(Name, loadAtStart);
        void Row(string mode, List<(double Wall, double Cpu)> runs, int findings)
        {
            double wall = Median(runs.Select(x => x.Wall)), cpu = Median(runs.Select(x => x.Cpu));
            report.Add(("mode", mode), ("lines", lines), ("trainer_methods", classes * methodsPerClass),
                ("wall_ms", wall), ("cpu_ms", cpu), ("ratio_wall", wall / plainWall), ("ratio_cpu", cpu / plainCpu),
                ("min_ratio_cpu", runs.Min(x => x.Cpu) / plainMinCpu), ("findings", findings));
        }
        Row("compile (bind + emit)", plain, 0);
        Row("compile + analyzer (concurrent, as csc)", concurrentRuns, warm.Findings);
        Row("compile + analyzer (sequential)", sequentialRuns, warm.Findings);
        Row("compile + trainer-shape analyzer (concurrent)", shapeRuns, 0);
        Row("compile + both VectorLm analyzers (concurrent, as a package user's csc)", bothRuns, bothFindings);
        report.Notes.Add("ratio_* compare medians; min_ratio_cpu compares the fastest run of each (least disturbed by other processes)");
        report.Notes.Add("the deadlock analyzer alone binds every body of every type with collectives through the semantic model; with the trainer-shape analyzer (or any analyzer with operation actions, as the SDK's own) those bodies are bound once and shared, so the difference between the last two rows is what the deadlock analysis adds in a real build");
        report.Notes.Add($"{classes} [DistributedTrainer] classes x {methodsPerClass} trainer methods (+ helpers, lambdas, local functions); {repetitions} alternating runs each, medians; goal: ratio <= 1.2. cpu_ms is this process's CPU time, steadier than wall time on a shared machine");
        report.Extra["goal_ratio"] = 1.2;
        return report;
    }

    static double Median(IEnumerable<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    static ImmutableArray<MetadataReference> References()
    {
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => Path.GetFileName(p).StartsWith("System.", StringComparison.Ordinal) || Path.GetFileName(p) is "mscorlib.dll" or "netstandard.dll")
            .Append(typeof(TrainerContext).Assembly.Location)
            .Append(typeof(TorchSharp.torch).Assembly.Location)
            .Distinct();
        return paths.Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
    }

    /// <summary>
    /// One trainer class: realistic loop code (loops, switches, lambdas, local functions, rank-conditional logging and
    /// saving, helpers reaching collectives) where every third method has one rank-conditional barrier.
    /// </summary>
    static string TrainerSource(int index, int methods)
    {
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $$"""
            using System;
            using System.Collections.Generic;
            using System.Linq;
            using TorchSharp;
            using VectorLm;
            using VectorLm.Sampling;

            namespace Generated.N{{index}};

            [DistributedTrainer]
            public partial class Trainer{{index}}
            {
                readonly TrainerContext _ctx;
                readonly ISamplingEngine _sampler;
                readonly torch.optim.Optimizer _optimizer;
                readonly bool _lead;
                int _steps;

                public Trainer{{index}}(TrainerContext ctx, ISamplingEngine sampler, torch.optim.Optimizer optimizer)
                {
                    _ctx = ctx;
                    _sampler = sampler;
                    _optimizer = optimizer;
                    _lead = ctx.IsMainRank;
                }

                void Sync() => _ctx.Barrier();

            """);
        for (int m = 0; m < methods; m++)
        {
            bool flagged = (index * methods + m) % 3 == 0;
            s.Append(CultureInfo.InvariantCulture, $$"""
                    public int Step{{m}}(IReadOnlyList<string> prompts, int step)
                    {
                        int total = 0;
                        for (int i = 0; i < prompts.Count; i++)
                        {
                            var text = prompts[i].Trim();
                            if (text.Length == 0) continue;
                            total += text.Length * (i + 1);
                            if (step % 10 == {{m % 10}}) total -= i;
                        }
                        var completions = _sampler.Generate(prompts);
                        foreach (var completion in completions)
                            foreach (var sample in completion.Samples)
                                total += sample.Text.Length;
                        if (_ctx.IsMainRank)
                        {
                            Console.WriteLine($"step {step} total {total}");
                            Save{{m}}(total);
                        }
                        Sync();
                        var local = Helper{{m}}(total, step);
                        switch (local % 4)
                        {
                            case 0: total++; break;
                            case 1: total--; break;
                            default: total *= 2; break;
                        }
                        Func<int, int> twice = x => x * 2;
                        total = twice(total);
                        int Shift(int v) => v + step;
                        total = Shift(total);
                        var best = completions.Select(c => c.Samples.Count).DefaultIfEmpty(0).Max();
                        total += best > 1 ? best : 0;
                        if (step % 100 == 0) _optimizer.step();
                        _steps++;
                        {{(flagged ? "if (_lead) _ctx.Barrier();" : "if (_lead) Console.WriteLine(_steps);")}}
                        return total;
                    }

                    void Save{{m}}(int total)
                    {
                        if (_ctx.Rank != 0) return;
                        Console.WriteLine(total);
                    }

                    static int Helper{{m}}(int a, int b)
                    {
                        var r = a;
                        while (r > 1000) r /= 2;
                        return r + b;
                    }

            """);
        }
        s.Append("}\n");
        return s.ToString();
    }
}
