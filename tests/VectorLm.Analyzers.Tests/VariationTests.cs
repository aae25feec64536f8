using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>More shapes of the same kinds as the issue's: branches, loops and early exits in many spellings.</summary>
public class VariationTests
{
    public class BranchFailures
    {
        [Fact]
        public Task ElseIfChain() => Analyzer(Body("""
            if (ctx.Rank == 0) {|VLM1001:ctx.Barrier()|};
            else if (ctx.Rank == 1) Log();
            else {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task NestedInUniformIf() => Analyzer(Body("""
            if (step > 0) { if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|}; }
            """));

        [Fact]
        public Task NegatedConditionElseArm() => Analyzer(Body("""
            if (!ctx.IsMainRank) { Log(); } else { {|VLM1001:ctx.Barrier()|}; }
            """));

        [Fact]
        public Task LocalRank() => Analyzer(Body("""
            if (ctx.LocalRank == 0) {|VLM1001:sampler.SyncWeights()|};
            """));

        [Fact]
        public Task ShortCircuitOr() => Analyzer(Body("""
            if (ctx.IsMainRank || {|VLM1001:sampler.Generate(p)|}.Count > 0) Log();
            """));

        [Fact]
        public Task ConditionalAccessOnTaintedReceiver() => Analyzer(Body("""
            var engine = ctx.IsMainRank ? sampler : null;
            var r = {|VLM1001:engine?.Generate(p)|};
            """));

        [Fact]
        public Task ConstantPattern() => Analyzer(Body("""
            if (ctx.Rank is 0) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task PropertyPattern() => Analyzer(Body("""
            if (ctx is { IsMainRank: true }) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task RelationalPattern() => Analyzer(Body("""
            if (ctx.Rank is > 0 and < 4) {|VLM1001:ctx.AllReduce(g)|};
            """));

        [Fact]
        public Task SwitchExpression() => Analyzer(Body("""
            var r = ctx.Rank switch { 0 => {|VLM1001:sampler.Generate(a)|}, _ => null };
            """));

        [Fact]
        public Task SwitchOnEnvironmentRank() => Analyzer(Body("""
            var rank = int.Parse(Environment.GetEnvironmentVariable("RANK") ?? "0");
            switch (rank) { case 0: {|VLM1001:ctx.Barrier()|}; break; default: Log(); break; }
            """));

        [Fact]
        public Task SlurmRank() => Analyzer(Body("""
            if (Environment.GetEnvironmentVariable("SLURM_PROCID") == "0") {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task ImplicitFlowThroughAssignmentUnderBranch() => Analyzer(Body("""
            bool lead = false;
            if (ctx.Rank == 0) lead = true;
            if (lead) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task TaintThroughArithmeticAndCalls() => Analyzer(Body("""
            var shard = Math.Max(ctx.Rank * 2, 1) % 3;
            var name = $"shard-{shard}";
            if (name.Length > 7) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task Deconstruction() => Analyzer(Body("""
            var (lead, n) = (ctx.IsMainRank, 3);
            if (n > 1) ctx.Barrier();
            if (lead) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task TupleElement() => Analyzer(Body("""
            var info = (Rank: ctx.Rank, Size: ctx.WorldSize);
            if (info.Rank == 0) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task OutArgumentOfOwnMethod() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                bool TryLead(out bool lead) { lead = ctx.IsMainRank; return true; }
                void Run()
                {
                    TryLead(out var lead);
                    if (lead) {|VLM1001:ctx.Barrier()|};
                }
            }
            """);

        [Fact]
        public Task OutArgumentOfLibraryMethod() => Analyzer(Body("""
            if (int.TryParse(Environment.GetEnvironmentVariable("LOCAL_RANK"), out var local) && local == 0) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task PropertyWithTaintedGetter() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                bool Lead => ctx.Rank == 0;
                void Run() { if (Lead) {|VLM1001:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task AutoPropertySetElsewhere() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                public bool Lead { get; set; }
                public void Init() => Lead = ctx.IsMainRank;
                void Run() { if (Lead) {|VLM1001:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task FieldSetThroughSetterMethod() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                bool _lead;
                void SetLead(bool value) { _lead = value; }
                void Init() => SetLead(ctx.IsMainRank);
                void Run() { if (_lead) {|VLM1001:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task StaticHelperInAnotherClass() => Analyzer(Prelude + """

            static class Ranks { public static bool IsLead(TrainerContext c) => c.Rank == 0; }
            class Subject
            {
                TrainerContext ctx = null!;
                void Run() { if (Ranks.IsLead(ctx)) {|VLM1001:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task HelperReturningItsArgument() => Analyzer(Prelude + """

            static class Util { public static T Same<T>(T value) => value; }
            class Subject
            {
                TrainerContext ctx = null!;
                void Run() { if (Util.Same(ctx.Rank) == 0) {|VLM1001:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task MethodReachingCollectiveTransitively() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void Sync() => Inner();
                void Inner() { Log(); ctx.Barrier(); }
                void Log() { }
                void Run() { if (ctx.IsMainRank) {|VLM1001:Sync()|}; }
            }
            """);

        [Fact]
        public Task RecursiveMethodWithCollective() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void Loop(int n) { if (n == 0) return; ctx.Barrier(); Loop(n - 1); }
                void Run() { if (ctx.IsMainRank) {|VLM1001:Loop(3)|}; }
            }
            """);

        [Fact]
        public Task MutuallyRecursiveMethods() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void A(int n) { if (n > 0) B(n - 1); }
                void B(int n) { ctx.Barrier(); A(n); }
                void Run() { if (ctx.IsMainRank) {|VLM1001:A(3)|}; }
            }
            """);

        [Fact]
        public Task RankDependentArgumentControlsCollective() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void MaybeSync(bool doIt) { if (doIt) ctx.Barrier(); }
                void Run(int step)
                {
                    MaybeSync(step > 0);
                    {|VLM1001:MaybeSync(ctx.IsMainRank)|};
                }
            }
            """);

        [Fact]
        public Task LambdaBody() => Analyzer(Body("""
            Action act = () => { if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|}; };
            act();
            """));

        [Fact]
        public Task LambdaCapturingTaintedLocal() => Analyzer(Body("""
            var lead = ctx.IsMainRank;
            Func<Task> work = async () => { await Task.Yield(); if (lead) {|VLM1001:ctx.Barrier()|}; };
            """));

        [Fact]
        public Task LocalFunctionCapturingTaintedLocal() => Analyzer(Body("""
            var lead = ctx.Rank == 0;
            void Maybe() { if (lead) {|VLM1001:ctx.Barrier()|}; }
            Maybe();
            """));

        [Fact]
        public Task LambdaPerformingCollectiveCalledOnOneRank() => Analyzer(Body("""
            var items = new List<int> { 1, 2 };
            if (ctx.IsMainRank) {|VLM1001:items.ForEach(i => ctx.Barrier())|};
            """));

        [Fact]
        public Task AsyncMethod() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                ISamplingEngine sampler = null!;
                async Task<int> RunAsync(IReadOnlyList<string> p)
                {
                    await Task.Delay(1);
                    if (ctx.IsMainRank) { var r = {|VLM1001:sampler.Generate(p)|}; return r.Count; }
                    return 0;
                }
            }
            """);

        [Fact]
        public Task InsideTryWithFinally() => Analyzer(Body("""
            try { if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|}; } finally { Save(); }
            """));

        [Fact]
        public Task InsideCatch() => Analyzer(Body("""
            try { Save(); } catch (Exception) { if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|}; }
            """));

        [Fact]
        public Task InTrainerCollectivesAndOptimizer() => Analyzer(Prelude + """

            [DistributedTrainer]
            partial class Trainer
            {
                torch.optim.Optimizer optimizer = null!;
                void Train(TrainerContext ctx)
                {
                    var lead = ctx.IsMainRank;
                    if (!lead) return;
                    {|VLM1003:optimizer.step()|};
                }
            }
            """);

        [Fact]
        public Task ConditionalValueFeedsLaterBranch() => Analyzer(Body("""
            var n = ctx.IsMainRank ? 1 : 0;
            if (n > 0) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task CoalesceWithTaintedValue() => Analyzer(Body("""
            string? name = ctx.IsMainRank ? "lead" : null;
            var s = name ?? "worker";
            if (s == "lead") {|VLM1001:ctx.Barrier()|};
            """));
    }

    public class LoopFailures
    {
        [Fact]
        public Task WhileCountingDownTheRank() => Analyzer(Body("""
            int n = ctx.Rank;
            while (n-- > 0) {|VLM1002:ctx.Barrier()|};
            """));

        [Fact]
        public Task DoWhile() => Analyzer(Body("""
            int i = 0;
            do { {|VLM1002:ctx.AllReduce(g)|}; i++; } while (i <= ctx.LocalRank);
            """));

        [Fact]
        public Task ForeachOverRankShard() => Analyzer(Body("""
            var shard = a.Skip(ctx.Rank).ToList();
            foreach (var prompt in shard) {|VLM1002:sampler.Generate(new[] { prompt })|};
            """));

        [Fact]
        public Task ForeachOverLambdaFilteredShard() => Analyzer(Body("""
            var mine = a.Where((x, i) => i % ctx.WorldSize == ctx.Rank);
            foreach (var prompt in mine) {|VLM1002:ctx.Barrier()|};
            """));

        [Fact]
        public Task ForeachOverListFilledOnOneRank() => Analyzer(Body("""
            var todo = new List<string>();
            if (ctx.IsMainRank) todo.Add("x");
            foreach (var t in todo) {|VLM1002:ctx.Barrier()|};
            """));

        [Fact]
        public Task LoopWhoseBoundComesFromAMethod() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                int Batches() => 10 + ctx.Rank;
                void Run() { for (int i = 0; i < Batches(); i++) {|VLM1002:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task GotoLoop() => Analyzer(Body("""
            int i = 0;
            again:
            {|VLM1002:ctx.Barrier()|};
            i++;
            if (i < ctx.Rank) goto again;
            """));
    }

    public class EarlyExitFailures
    {
        [Fact]
        public Task BreakOnRank() => Analyzer(Body("""
            while (true) { {|VLM1003:ctx.Barrier()|}; if (ctx.Rank == 0) break; }
            """));

        [Fact]
        public Task ForeachContinue() => Analyzer(Body("""
            foreach (var x in a) { if (ctx.IsMainRank) continue; {|VLM1003:sampler.Generate(p)|}; }
            """));

        [Fact]
        public Task ReturnInsideBlockWithLogging() => Analyzer(Body("""
            if (!ctx.IsMainRank) { Log(); return; }
            {|VLM1003:ctx.Barrier()|};
            {|VLM1003:sampler.Generate(p)|};
            """));

        [Fact]
        public Task GotoForward() => Analyzer(Body("""
            if (ctx.IsMainRank) goto done;
            {|VLM1003:ctx.Barrier()|};
            done:
            Save();
            """));

        [Fact]
        public Task EnvironmentExit() => Analyzer(Body("""
            if (ctx.Rank == 1) Environment.Exit(1);
            {|VLM1003:ctx.Barrier()|};
            """));

        [Fact]
        public Task DoesNotReturnHelper() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                [System.Diagnostics.CodeAnalysis.DoesNotReturn]
                static void Fail() => throw new InvalidOperationException();
                void Run()
                {
                    if (ctx.IsMainRank) Fail();
                    {|VLM1003:ctx.Barrier()|};
                }
            }
            """);

        [Fact]
        public Task ReturnInsideTryFinally() => Analyzer(Body("""
            try
            {
                if (ctx.Rank != 0) return;
                {|VLM1003:ctx.Barrier()|};
            }
            finally { Log(); }
            """));

        [Fact]
        public Task YieldBreakInIterator() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                IEnumerable<int> Steps()
                {
                    yield return 1;
                    if (ctx.IsMainRank) yield break;
                    {|VLM1003:ctx.Barrier()|};
                    yield return 2;
                }
            }
            """);
    }

    public class SuccessCases
    {
        [Fact]
        public Task RankOnlyInArguments() => Analyzer(Body("""sampler.Generate(new[] { $"rank {ctx.Rank}" });"""));

        [Fact]
        public Task BroadcastResultIsUniform() => Analyzer(Body("if (ctx.BroadcastObject(ctx.Rank) == 0) ctx.Barrier();"));

        [Fact]
        public Task AllReduceResultIsUniform() => Analyzer(Body("""
            var sum = ctx.AllReduce(g * ctx.Rank);
            if (sum.item<float>() > 0) ctx.Barrier();
            """));

        [Fact]
        public Task AllGatherLoopIsUniform() => Analyzer(Body("foreach (var r in ctx.AllGatherObject(ctx.Rank)) ctx.Barrier();"));

        [Fact]
        public Task SameCollectiveThroughDifferentHelpers() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void SyncA() => ctx.Barrier();
                void SyncB() { Log(); ctx.Barrier(); }
                void Log() { }
                void Run() { if (ctx.IsMainRank) SyncA(); else SyncB(); }
            }
            """);

        [Fact]
        public Task RankLoggingInsideUniformLoop() => Analyzer(Body("""
            for (int i = 0; i < 10; i++) { if (ctx.IsMainRank) Log(); ctx.Barrier(); }
            """));

        [Fact]
        public Task LambdaCreatedButNotCalledUnderBranch() => Analyzer(Body("""
            Action? later = null;
            if (ctx.IsMainRank) later = () => Log();
            ctx.Barrier();
            """));

        [Fact]
        public Task GeneratedCodeIsSkipped() => new AnalyzerTest
        {
            TestState =
            {
                Sources =
                {
                    ("Trainer.g.cs", Body("if (ctx.IsMainRank) ctx.Barrier();")),
                    ("Other.cs", "// <auto-generated/>\n" + Body("if (ctx.IsMainRank) ctx.Barrier();").Replace("class Subject", "class Other")),
                },
            },
        }.RunAsync();

        [Fact]
        public Task TaintKilledByUniformValue() => Analyzer(Body("""
            var lead = ctx.IsMainRank;
            lead = ctx.WorldSize > 1;
            if (lead) ctx.Barrier();
            """));

        [Fact]
        public Task SameHelperOnBothArms() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void Sync() => ctx.Barrier();
                void Run() { if (ctx.IsMainRank) { Sync(); } else { Sync(); } }
            }
            """);

        [Fact]
        public Task BarrierInFinallyRunsOnEveryRank() => Analyzer(Body("""
            try { if (ctx.Rank != 0) return; Save(); } finally { ctx.Barrier(); }
            """));

        [Fact]
        public Task OtherEnvironmentVariablesAreUniform() => Analyzer(Body("""
            if (Environment.GetEnvironmentVariable("WORLD_SIZE") == "1") ctx.Barrier();
            """));

        [Fact]
        public Task ThrowOnUniformCondition() => Analyzer(Body("""
            if (ctx.WorldSize < 1) throw new InvalidOperationException();
            ctx.Barrier();
            """));

        [Fact]
        public Task RankConditionalWithoutCollectives() => Analyzer(Body("""
            if (ctx.IsMainRank) { Console.WriteLine("lead"); Save(); }
            else if (ctx.Rank == 1) { Log(); }
            for (int i = 0; i < ctx.Rank; i++) Log();
            while (ctx.Rank > step) step++;
            ctx.Barrier();
            """));

        [Fact]
        public Task ParameterControlledHelperWithUniformArgument() => Analyzer(Prelude + """

            class Subject
            {
                TrainerContext ctx = null!;
                void MaybeSync(bool doIt) { if (doIt) ctx.Barrier(); }
                void Run(int step) { MaybeSync(step % 10 == 0); MaybeSync(ctx.WorldSize > 1); }
            }
            """);

        [Fact]
        public Task UniformLoopWithCollectives() => Analyzer(Body("""
            for (int i = 0; i < every; i++) { ctx.Barrier(); sampler.Generate(p); }
            foreach (var prompt in a) sampler.Generate(new[] { prompt });
            """));

        [Fact]
        public Task ConditionalBothArmsGenerate() => Analyzer(Body("""
            var r = ctx.IsMainRank ? sampler.Generate(a) : sampler.Generate(b);
            """));

        [Fact]
        public Task SwitchExpressionAllArmsGenerate() => Analyzer(Body("""
            var r = (ctx.Rank % 3) switch { 0 => sampler.Generate(a), 1 => sampler.Generate(b), _ => sampler.Generate(p) };
            """));

        [Fact]
        public Task NoVectorLmReferenceNoAnalysis() => new AnalyzerTest
        {
            TestCode = "class C { int Rank => 0; void M() { if (Rank == 0) System.Console.WriteLine(); } }",
        }.RunAsync();
    }
}

public class DelegateAndUserAttributeTests
{
    public class Failures
    {
        [Fact]
        public Task DelegateLocalInvokedOnOneRank() => Analyzer(Body("""
            Action sync = () => ctx.Barrier();
            if (ctx.IsMainRank) {|VLM1001:sync()|};
            """));

        [Fact]
        public Task DelegateLocalInvokeMethod() => Analyzer(Body("""
            Func<IReadOnlyList<Completion>> gen = () => sampler.Generate(p);
            if (ctx.Rank > 0) return;
            var r = {|VLM1003:gen.Invoke()|};
            """));

        [Fact]
        public Task UserCollectiveAndRankDependentMembers() => Analyzer(Verify.Prelude + """

            class Mesh
            {
                [RankDependent] public int Stage { get; set; }
                [Collective] public void Exchange() { }
                [RankUniform] public int Stages() => 4;
            }
            class Subject
            {
                void Run(Mesh mesh)
                {
                    if (mesh.Stages() > 1) mesh.Exchange();
                    if (mesh.Stage == 0) {|VLM1001:mesh.Exchange()|};
                }
            }
            """);

        [Fact]
        public Task EngineImplementationCalledThroughItsClass() => Analyzer(Verify.Prelude + """

            abstract class MyEngine : ISamplingEngine
            {
                public abstract IReadOnlyList<Completion> Generate(IReadOnlyList<string> prompts, SamplingParams? parameters = null,
                    string member = "", string file = "", int line = 0);
                public long WeightVersion => 0;
                public bool IsStale => false;
                public void MarkStale() { }
                public void SyncWeights(string member = "", string file = "", int line = 0) { }
                public void Dispose() { }
            }
            class Subject
            {
                void Run(TrainerContext ctx, MyEngine engine, IReadOnlyList<string> p)
                {
                    if (ctx.IsMainRank) {|VLM1001:engine.Generate(p)|};
                }
            }
            """);

        [Fact]
        public Task ShardedForLoop() => Analyzer(Body("""
            for (int i = ctx.Rank; i < a.Count; i += ctx.WorldSize) {|VLM1002:sampler.Generate(new[] { a[i] })|};
            """));

        [Fact]
        public Task ForeachOverRangeOfRank() => Analyzer(Body("""
            foreach (var i in Enumerable.Range(0, ctx.LocalRank + 1)) {|VLM1002:ctx.Barrier()|};
            """));
    }

    public class SuccessCases
    {
        [Fact]
        public Task CollectiveImplementationsMayBranchOnRank() => Analyzer(Verify.Prelude + """

            class Ring
            {
                [RankDependent] public int Rank { get; set; }
                [Collective] public void Send() { }
                [Collective] public void Pass() { if (Rank == 0) Send(); }
            }
            """);

        [Fact]
        public Task DelegateLocalCalledOnEveryRank() => Analyzer(Body("""
            Action sync = () => ctx.Barrier();
            if (ctx.IsMainRank) Log();
            sync();
            """));
    }
}

public class TopLevelProgramTests
{
    [Fact]
    public Task TopLevelStatements() => new Verify.AnalyzerTest
    {
        TestState =
        {
            OutputKind = Microsoft.CodeAnalysis.OutputKind.ConsoleApplication,
            Sources =
            {
                Verify.Prelude + """

                using var ctx = TrainerContext.SingleProcess();
                if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|};
                ctx.Barrier();
                """,
            },
        },
    }.RunAsync();
}

public class NestedUniformBranchTests
{
    [Fact]
    public Task SameUniformBranchOnBothArmsIsFine() => Verify.Analyzer(Verify.Body("""
        if (ctx.IsMainRank) { if (step % 2 == 0) sampler.Generate(a); }
        else { if (step % 2 == 0) sampler.Generate(b); }
        """));

    [Fact]
    public Task DifferentUniformBranchesAreReported() => Verify.Analyzer(Verify.Body("""
        if (ctx.IsMainRank) { if (step % 2 == 0) {|VLM1001:sampler.Generate(a)|}; }
        else { if (step % 3 == 0) {|VLM1001:sampler.Generate(b)|}; }
        """));

    [Fact]
    public Task UniformBranchOnOneArmOnlyIsReported() => Verify.Analyzer(Verify.Body("""
        if (ctx.IsMainRank) { if (step % 2 == 0) {|VLM1001:ctx.Barrier()|}; } else { Log(); }
        """));
}
