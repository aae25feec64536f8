using System.Collections.Immutable;
using System.Diagnostics;
using System.Globalization;
using System.Runtime.Loader;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.Collectives;
using VectorLm.Analyzers.TrainerShape;

namespace VectorLm.Bench;

/// <summary>
/// Cost of the VectorLm analyzers (the deadlock analyzer VLM1001-VLM1003, the trainer-shape analyzer, both as a package
/// user's csc runs them) on a generated project of about 50,000 lines with hundreds of trainer methods: compile time with
/// the analyzers over compile time without them, measured side by side (alternating runs, fresh compilation each time),
/// with probe rows that show where the time goes. Arguments: [classes] [repetitions] [modes: '|'-separated parts of
/// their names]. VECTORLM_BENCH_BASELINE_ANALYZERS=path/to/VectorLm.Analyzers.dll adds rows for another build of the
/// analyzers, loaded side by side, for before/after in one process.
/// </summary>
public sealed class AnalyzerBenchmark : IBenchmark
{
    public string Name => "analyzer";

    public string Description => "VectorLm analyzers' cost on a generated ~50k-line trainer project (ratio to plain compile)";

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
        int expectedFindings = Enumerable.Range(0, classes * methodsPerClass).Count(k => k % 3 == 0);

        // Plain compile: bind everything and emit. With analyzers: the same, plus the analyzers as csc runs them.
        var process = Process.GetCurrentProcess();
        double Cpu() { process.Refresh(); return process.TotalProcessorTime.TotalMilliseconds; }
        (double Wall, double Cpu, int Findings) Plain()
        {
            double cpu0 = Cpu();
            var watch = Stopwatch.StartNew();
            var compilation = Fresh();
            var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            if (errors.Count > 0) throw new InvalidOperationException("generated project does not compile: " + errors[0]);
            using var stream = new MemoryStream();
            compilation.Emit(stream);
            return (watch.Elapsed.TotalMilliseconds, Cpu() - cpu0, 0);
        }
        (double Wall, double Cpu, int Findings) WithAnalyzers(ImmutableArray<DiagnosticAnalyzer> analyzers, bool concurrent)
        {
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
        ImmutableArray<DiagnosticAnalyzer> Set(params DiagnosticAnalyzer[] analyzers) => analyzers.ToImmutableArray();

        // The first three rows after the plain compile are probes that say where the time goes: what binding every body
        // and building its IOperation tree costs (what an operation action makes the driver do), and what asking the
        // semantic model for the symbols of the calls that may reach a collective costs (binds those bodies only).
        var modes = new (string Mode, Func<(double Wall, double Cpu, int Findings)> Run)[]
        {
            ("compile (bind + emit)", Plain),
            ("probe: do-nothing operation block action on every body (bind + IOperation floor)", () => WithAnalyzers(Set(new OperationFloorProbe()), true)),
            ("probe: semantic-model symbols of calls named in CollectiveNames only", () => WithAnalyzers(Set(new CollectiveCallSymbolsProbe()), true)),
            ("compile + analyzer (concurrent, as csc)", () => WithAnalyzers(deadlock, true)),
            ("compile + analyzer (sequential)", () => WithAnalyzers(deadlock, false)),
            ("compile + trainer-shape analyzer (concurrent)", () => WithAnalyzers(Set(new TrainerShapeAnalyzer()), true)),
            // What a package user's csc runs: both VectorLm analyzers.
            ("compile + both VectorLm analyzers (concurrent, as a package user's csc)", () => WithAnalyzers(Set(new TrainerShapeAnalyzer(), new CollectiveDeadlockAnalyzer()), true)),
        };
        var baselineNotes = new List<string>();
        // Before/after in one process: VECTORLM_BENCH_BASELINE_ANALYZERS names another build of VectorLm.Analyzers.dll
        // (e.g. of an older commit), loaded side by side, whose analyzers run as extra rows between the others.
        if (Environment.GetEnvironmentVariable("VECTORLM_BENCH_BASELINE_ANALYZERS") is { Length: > 0 } baselinePath)
        {
            var baseline = new AssemblyLoadContext("baseline analyzers").LoadFromAssemblyPath(Path.GetFullPath(baselinePath));
            DiagnosticAnalyzer Baseline(string type) => (DiagnosticAnalyzer)Activator.CreateInstance(baseline.GetType(type, throwOnError: true)!)!;
            const string BaselineDeadlock = "VectorLm.Analyzers.Collectives.CollectiveDeadlockAnalyzer";
            const string BaselineShape = "VectorLm.Analyzers.TrainerShape.TrainerShapeAnalyzer";
            modes =
            [
                .. modes,
                ("baseline build: compile + analyzer (concurrent, as csc)", () => WithAnalyzers(Set(Baseline(BaselineDeadlock)), true)),
                ("baseline build: compile + trainer-shape analyzer (concurrent)", () => WithAnalyzers(Set(Baseline(BaselineShape)), true)),
                ("baseline build: compile + both VectorLm analyzers (concurrent, as a package user's csc)",
                    () => WithAnalyzers(Set(Baseline(BaselineShape), Baseline(BaselineDeadlock)), true)),
            ];
            baselineNotes.Add($"baseline build rows: the analyzers of {baselinePath}, loaded side by side");
        }
        // Optional third argument: run only the modes whose name contains one of its '|'-separated parts (the plain
        // compile always runs).
        string[]? only = args.Length > 2 ? args[2].Split('|') : null;
        modes = modes.Where((m, i) => i == 0 || only is null || only.Any(o => m.Mode.Contains(o, StringComparison.Ordinal))).ToArray();

        // Warm-up (JIT, metadata), then alternate so that machine noise hits every mode alike.
        foreach (var (_, run) in modes) run();
        var runs = modes.Select(_ => new List<(double Wall, double Cpu, int Findings)>()).ToArray();
        for (int r = 0; r < repetitions; r++)
            for (int m = 0; m < modes.Length; m++)
                runs[m].Add(modes[m].Run());

        var plain = runs[0];
        double plainWall = Median(plain.Select(x => x.Wall)), plainCpu = Median(plain.Select(x => x.Cpu)), plainMinCpu = plain.Min(x => x.Cpu);
        var report = new BenchReport(Name, loadAtStart);
        report.Notes.AddRange(baselineNotes);
        for (int m = 0; m < modes.Length; m++)
        {
            var mode = modes[m].Mode;
            int findings = runs[m][^1].Findings;
            if (mode.Contains("analyzer (", StringComparison.Ordinal) && !mode.Contains("trainer-shape", StringComparison.Ordinal)
                && runs[m].Any(x => x.Findings != expectedFindings))
                throw new InvalidOperationException($"expected {expectedFindings} findings in the generated project, got {string.Join(", ", runs[m].Select(x => x.Findings))} ({mode})");
            double wall = Median(runs[m].Select(x => x.Wall)), cpu = Median(runs[m].Select(x => x.Cpu));
            report.Add(("mode", mode), ("lines", lines), ("trainer_methods", classes * methodsPerClass),
                ("wall_ms", wall), ("cpu_ms", cpu), ("ratio_wall", wall / plainWall), ("ratio_cpu", cpu / plainCpu),
                ("min_ratio_wall", runs[m].Min(x => x.Wall) / plain.Min(x => x.Wall)),
                ("min_ratio_cpu", runs[m].Min(x => x.Cpu) / plainMinCpu), ("findings", findings));
        }
        report.Notes.Add("ratio_* compare medians; min_ratio_* compare the fastest run of each (least disturbed by other processes)");
        report.Notes.Add("probes: the operation-block row is the floor of any analyzer that needs every body's IOperation tree (the driver binds each body through the semantic model again: the compile's own binding is not shared with analyzers); the CollectiveNames row binds only the bodies with a call whose name may reach a collective, and asks for those calls' symbols");
        report.Notes.Add("every Step method here calls Generate, step() and a helper that reaches a Barrier, and branches: both analyzers must bind it (the deadlock analyzer builds its graph), so the operation-block floor bounds what skipping can gain; the Save/Helper bodies, the only ones that reach no collective, are left unbound (deadlock analyzer) or unbound until a caller's taint pass asks (private, writes nothing). Measured inside the deadlock analyzer (sequential, 31 classes, loaded machine): taint passes ~50-65% of its own time, graph building (binding + IOperation + CFG) ~20-30%, deadlock checks ~5%");
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

// The probes below are measuring instruments run in-process by this benchmark, never shipped to a compiler.
#pragma warning disable RS1036, RS1041, RS2008
/// <summary>Probe: an operation block action that does nothing, so the driver binds every body and builds its IOperation tree.</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
sealed class OperationFloorProbe : DiagnosticAnalyzer
{
    internal static readonly DiagnosticDescriptor Never = new("BENCH0001", "probe", "probe", "Bench", DiagnosticSeverity.Warning, isEnabledByDefault: true);

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => [Never];

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterOperationBlockAction(_ => { });
    }
}

/// <summary>Probe: asks the semantic model for the symbol of each call whose name is in <see cref="CollectiveNames"/>, nothing else.</summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
sealed class CollectiveCallSymbolsProbe : DiagnosticAnalyzer
{
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => [OperationFloorProbe.Never];

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var names = new CollectiveNames(start.Compilation, new KnownSymbols(), start.CancellationToken);
            start.RegisterSyntaxNodeAction(node =>
            {
                var invocation = (InvocationExpressionSyntax)node.Node;
                var name = invocation.Expression switch
                {
                    SimpleNameSyntax simple => simple.Identifier.ValueText,
                    MemberAccessExpressionSyntax access => access.Name.Identifier.ValueText,
                    MemberBindingExpressionSyntax binding => binding.Name.Identifier.ValueText,
                    _ => null,
                };
                if (name is not null && names.IsCallName(name)) node.SemanticModel.GetSymbolInfo(invocation, node.CancellationToken);
            }, SyntaxKind.InvocationExpression);
        });
    }
}
