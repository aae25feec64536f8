using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using VectorLm.Analyzers;
using VectorLm.Analyzers.TrainerShape;

namespace VectorLm.Generators.Tests;

/// <summary>The VLM0001-VLM0008 trainer-shape rules, with Microsoft.CodeAnalysis.Testing markup.</summary>
public static class AnalyzerTests
{
    const string Usings = "using System;\nusing System.Collections.Generic;\nusing System.Threading;\nusing System.Threading.Tasks;\nusing VectorLm;\n";

    static async Task VerifyAsync(string source, OutputKind kind = OutputKind.DynamicallyLinkedLibrary, string? trainerChoice = null,
        params DiagnosticResult[] expected)
    {
        var test = new CSharpAnalyzerTest<TrainerShapeAnalyzer, DefaultVerifier>
        {
            // References come from this test process (framework, VectorLm); nothing is downloaded.
            ReferenceAssemblies = new ReferenceAssemblies("net10.0"),
            TestCode = Usings + source,
            // Without the generator there is no Run/Main; compiler errors about that are not what these tests check.
            CompilerDiagnostics = CompilerDiagnostics.None,
        };
        test.TestState.AdditionalReferences.AddRange(GeneratorHarness.References);
        test.TestState.OutputKind = kind;
        if (trainerChoice is not null)
            test.TestState.AnalyzerConfigFiles.Add(("/.globalconfig", $"is_global = true\nbuild_property.VectorLmTrainer = {trainerChoice}\n"));
        test.ExpectedDiagnostics.AddRange(expected);
        await test.RunAsync();
    }

    public sealed class SuccessCases
    {
        [Fact]
        public Task Valid_sync_trainer() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                [Option] public int Steps { get; init; } = 3;
                [Option] public string[] Prompts { get; set; } = [];
                [Option(Name = "lr")] public double? LearningRate { get; private set; }
                public int NotAnOption => 1;
                public void Train(TrainerContext ctx) { }
            }
            """);

        [Fact]
        public Task Valid_async_trainer() => VerifyAsync("""
            [DistributedTrainer]
            partial class T
            {
                public Task TrainAsync(TrainerContext ctx, CancellationToken ct) => Task.CompletedTask;
            }
            """);

        [Fact]
        public Task Valid_sync_trainer_with_a_stop_token() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                public void Train(TrainerContext ctx, CancellationToken ct) { }
            }
            """);

        [Fact]
        public Task Two_trainers_in_a_library() => VerifyAsync("""
            [DistributedTrainer] public partial class A { public void Train(TrainerContext ctx) { } }
            [DistributedTrainer] public partial class B { public void Train(TrainerContext ctx) { } }
            """);

        [Fact]
        public Task Two_trainers_with_a_user_main() => VerifyAsync("""
            [DistributedTrainer] public partial class A { public void Train(TrainerContext ctx) { } }
            [DistributedTrainer] public partial class B { public void Train(TrainerContext ctx) { } }
            static class Program { static int Main(string[] args) => 0; }
            """, OutputKind.ConsoleApplication);

        [Fact]
        public Task Two_trainers_with_a_choice() => VerifyAsync("""
            namespace N;
            [DistributedTrainer] public partial class A { public void Train(TrainerContext ctx) { } }
            [DistributedTrainer] public partial class B { public void Train(TrainerContext ctx) { } }
            """, OutputKind.ConsoleApplication, trainerChoice: "N.B");
    }

    public sealed class VLM0001_NotPartial
    {
        [Fact]
        public Task Reported() => VerifyAsync("""
            [DistributedTrainer]
            public class {|VLM0001:T|}
            {
                public void Train(TrainerContext ctx) { }
            }
            """);
    }

    public sealed class VLM0002_TrainMethod
    {
        [Fact]
        public Task Missing() => VerifyAsync("""
            [DistributedTrainer]
            public partial class {|VLM0002:T|} { }
            """);

        [Fact]
        public Task Wrong_parameters() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T { public void {|VLM0002:Train|}(int steps) { } }
            """);

        [Fact]
        public Task Static() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T { public static void {|VLM0002:Train|}(TrainerContext ctx) { } }
            """);

        [Fact]
        public Task Async_without_token() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T { public Task {|VLM0002:TrainAsync|}(TrainerContext ctx) => Task.CompletedTask; }
            """);

        [Fact]
        public Task Both_forms() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                public void {|VLM0002:Train|}(TrainerContext ctx) { }
                public Task TrainAsync(TrainerContext ctx, CancellationToken ct) => Task.CompletedTask;
            }
            """);

        [Fact]
        public Task Train_with_and_without_a_token() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                public void {|VLM0002:Train|}(TrainerContext ctx) { }
                public void Train(TrainerContext ctx, CancellationToken ct) { }
            }
            """);
    }

    public sealed class VLM0003_OptionNotSettable
    {
        [Fact]
        public Task Getter_only_static_and_required() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                [Option] public int {|VLM0003:Steps|} => 3;
                [Option] public static int {|VLM0003:Seed2|} { get; set; }
                [Option] public required int {|VLM0003:Batch|} { get; set; }
                public void Train(TrainerContext ctx) { }
            }
            """);
    }

    public sealed class VLM0004_OptionTypeUnsupported
    {
        [Fact]
        public Task Lists_objects_and_jagged_arrays() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                [Option] public List<string> {|VLM0004:Prompts|} { get; set; } = new();
                [Option] public object? {|VLM0004:Anything|} { get; set; }
                [Option] public int[][] {|VLM0004:Grid|} { get; set; } = [];
                [Option] public int?[] {|VLM0004:Holes|} { get; set; } = [];
                [Option] public Uri? {|VLM0004:Endpoint|} { get; set; }
                public void Train(TrainerContext ctx) { }
            }
            """);
    }

    public sealed class VLM0005_ClassShape
    {
        [Fact]
        public Task Generic() => VerifyAsync("""
            [DistributedTrainer]
            public partial class {|VLM0005:T|}<TModel> { public void Train(TrainerContext ctx) { } }
            """);

        [Fact]
        public Task Nested() => VerifyAsync("""
            public partial class Outer
            {
                [DistributedTrainer]
                public partial class {|VLM0005:T|} { public void Train(TrainerContext ctx) { } }
            }
            """);

        [Fact]
        public Task Abstract_and_no_parameterless_constructor() => VerifyAsync("""
            [DistributedTrainer]
            public abstract partial class {|VLM0005:A|} { public void Train(TrainerContext ctx) { } }
            [DistributedTrainer]
            public partial class {|VLM0005:B|}(int seed) { public void Train(TrainerContext ctx) { _ = seed; } }
            """);
    }

    public sealed class VLM0006_AmbiguousTrainer
    {
        [Fact]
        public Task Two_trainers_in_an_executable() => VerifyAsync("""
            [DistributedTrainer] public partial class {|VLM0006:A|} { public void Train(TrainerContext ctx) { } }
            [DistributedTrainer] public partial class {|VLM0006:B|} { public void Train(TrainerContext ctx) { } }
            """, OutputKind.ConsoleApplication);
    }

    public sealed class VLM0007_OptionNameConflict
    {
        [Fact]
        public Task Reserved_and_duplicate_names() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                [Option] public int {|VLM0007:Seed|} { get; set; }
                [Option] public int WorldSizeHint { get; set; }
                [Option(Name = "world-size-hint")] public int {|VLM0007:Other|} { get; set; }
                [Option(Name = "--config")] public string? {|VLM0007:ConfigFile|} { get; set; }
                public void Train(TrainerContext ctx) { }
            }
            """);
    }

    public sealed class VLM0008_UnknownTrainerChoice
    {
        [Fact]
        public Task Choice_names_no_trainer() => VerifyAsync("""
            namespace N;
            [DistributedTrainer] public partial class A { public void Train(TrainerContext ctx) { } }
            """, OutputKind.ConsoleApplication, trainerChoice: "N.Missing",
            expected: new DiagnosticResult(DiagnosticDescriptors.UnknownTrainerChoice).WithArguments("N.Missing", "N.A"));
    }

    public sealed class VLM0009_CollectiveNotIntercepted
    {
        const string Engine = """
            public sealed class Echo : VectorLm.Sampling.ISamplingEngine
            {
                public IReadOnlyList<VectorLm.Sampling.Completion> Generate(IReadOnlyList<string> prompts, VectorLm.Sampling.SamplingParams? parameters = null,
                    string member = "", string file = "", int line = 0) => [];
                public long WeightVersion => 0;
                public bool IsStale => false;
                public void MarkStale() { }
                public void SyncWeights(string member = "", string file = "", int line = 0) { }
                public void Dispose() { }
            }
            """;

        [Fact]
        public Task Method_group_of_step_and_generate() => VerifyAsync(Engine + """

            [DistributedTrainer]
            public partial class T
            {
                public void Train(TrainerContext ctx)
                {
                    using var model = TorchSharp.torch.nn.Linear(1, 1);
                    var optimizer = TorchSharp.torch.optim.SGD(model.parameters(), 0.1);
                    Func<Func<TorchSharp.torch.Tensor>?, TorchSharp.torch.Tensor> step = {|VLM0009:optimizer.step|};
                    var echo = new Echo();
                    Func<IReadOnlyList<string>, VectorLm.Sampling.SamplingParams?, string, string, int, IReadOnlyList<VectorLm.Sampling.Completion>> generate = {|VLM0009:echo.Generate|};
                    optimizer.step();
                    echo.Generate(["direct calls are fine"]);
                }
            }
            """);

        [Fact]
        public Task Private_nested_engine() => VerifyAsync("""
            [DistributedTrainer]
            public partial class T
            {
                public void Train(TrainerContext ctx)
                {
                    var engine = new Hidden();
                    {|VLM0009:engine.Generate(["x"])|};
                    VectorLm.Sampling.ISamplingEngine visible = engine;
                    visible.Generate(["through the interface is fine"]);
                }

            """ + Engine.Replace("public sealed class Echo", "private sealed class Hidden", StringComparison.Ordinal) + "\n}\n");

        [Fact]
        public Task Outside_trainers_too() => VerifyAsync(Engine + """

            public static class Helper
            {
                public static Func<IReadOnlyList<string>, VectorLm.Sampling.SamplingParams?, string, string, int, IReadOnlyList<VectorLm.Sampling.Completion>> Of(Echo e) => {|VLM0009:e.Generate|};
                public static void Step(TorchSharp.torch.optim.Optimizer optimizer) => optimizer.step();
            }
            """);

        [Fact]
        public Task Gradient_clip_as_a_method_group() => VerifyAsync("""
            public static class Clipping
            {
                public static double Clip(TorchSharp.torch.nn.Module model)
                {
                    Func<IEnumerable<TorchSharp.Modules.Parameter>, double, double, double> clip = {|VLM0009:TorchSharp.torch.nn.utils.clip_grad_norm_|};
                    TorchSharp.torch.nn.utils.clip_grad_value_(model.parameters(), 1.0);
                    return TorchSharp.torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0);
                }
            }
            """);

        [Fact]
        public Task Reflection_lookup_of_step() => VerifyAsync("""
            public static class Reflective
            {
                public static object? Step(TorchSharp.torch.optim.Optimizer optimizer) =>
                    {|VLM0009:optimizer.GetType().GetMethod("step")|}?.Invoke(optimizer, [null]);
                public static object? Other(object o) => o.GetType().GetMethod("ToString")?.Invoke(o, null);
            }
            """);
    }

    public sealed class Descriptors
    {
        [Fact]
        public void Every_rule_has_a_help_page_and_a_release_row()
        {
            var repo = Path.GetFullPath(Path.Combine(GeneratorHarness.ProjectDir(), "..", ".."));
            var unshipped = File.ReadAllText(Path.Combine(repo, "src", "VectorLm.Analyzers", "AnalyzerReleases.Unshipped.md"));
            var rules = new TrainerShapeAnalyzer().SupportedDiagnostics;
            Assert.Equal(9, rules.Length);
            foreach (var rule in rules)
            {
                Assert.Equal(DiagnosticDescriptors.HelpLinkBase + rule.Id + ".md", rule.HelpLinkUri);
                var page = Path.Combine(repo, "docs", "rules", rule.Id + ".md");
                Assert.True(File.Exists(page), $"missing {page}");
                Assert.StartsWith("# " + rule.Id, File.ReadAllText(page), StringComparison.Ordinal);
                Assert.Contains(rule.Id + " | " + rule.Category + " | " + rule.DefaultSeverity, unshipped, StringComparison.Ordinal);
            }
        }
    }
}
