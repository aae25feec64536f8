using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Testing;
using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// Collectives reached through dispatch: interface members and virtual members stand for the union of their
/// implementations and overrides in the compilation; delegate-typed fields, properties and events for the functions
/// assigned to them. Each shape has a must-report and a must-not-report twin.
/// </summary>
public class DispatchTests
{
    const string Hooks = """

        interface IHook { void Run(); }
        sealed class SyncHook : IHook { public TrainerContext Ctx = null!; public void Run() => Ctx.Barrier(); }
        sealed class QuietHook : IHook { public void Run() { } }
        """;

    const string QuietHooks = """

        interface IHook { void Run(); }
        sealed class LogHook : IHook { public void Run() => Console.WriteLine("log"); }
        sealed class QuietHook : IHook { public void Run() { } }
        """;

    const string Steps = """

        abstract class StepBase { public abstract void Apply(TrainerContext ctx); }
        sealed class SyncStep : StepBase { public override void Apply(TrainerContext ctx) => ctx.Barrier(); }
        """;

    const string GenericReducer = """

        interface IReducer<T> { T Reduce(T value); }
        sealed class MeanReducer : IReducer<Tensor>
        {
            public TrainerContext Ctx = null!;
            public Tensor Reduce(Tensor value) => Ctx.AllReduce(value, ReduceOp.Avg);
        }
        """;

    const string DefaultMethod = """

        interface ISyncPoint
        {
            TrainerContext Ctx { get; }
            void Sync() => Ctx.Barrier();
        }
        sealed class Point : ISyncPoint { public TrainerContext Ctx { get; init; } = null!; }
        """;

    public class MustReport
    {
        [Fact]
        public Task InterfaceWithOneCollectiveImplementationSaysMay() => Analyzer(Body("""
            IHook h = Ask() ? new SyncHook() : new QuietHook();
            if (ctx.IsMainRank) {|#0:h.Run()|};
            """) + Hooks,
            new DiagnosticResult(DiagnosticDescriptors.MaybeRankConditionalCollective).WithLocation(0).WithLocation(23, 5)
                .WithArguments("Run (calls Barrier) (on some targets)", "ctx.IsMainRank"));

        [Fact]
        public Task AbstractBaseWithCollectiveOverride() => Analyzer(Body("""
            StepBase s = new SyncStep();
            if (ctx.Rank == 0) {|VLM1001:s.Apply(ctx)|};
            """) + Steps);

        [Fact]
        public Task GenericInterface() => Analyzer(Body("""
            IReducer<Tensor> r = new MeanReducer();
            if (ctx.IsMainRank) {|VLM1001:r.Reduce(g)|};
            """) + GenericReducer);

        [Fact]
        public Task DefaultInterfaceMethod() => Analyzer(Body("""
            ISyncPoint point = new Point { Ctx = ctx };
            if (ctx.IsMainRank) {|VLM1001:point.Sync()|};
            """) + DefaultMethod);

        [Fact]
        public Task CollectiveAttributeOnTheInterfaceCountsForEveryImplementation() => Analyzer(Prelude + """

            interface IExchange { [Collective] void Exchange(); }
            sealed class Local : IExchange { public void Exchange() { } }
            class User
            {
                TrainerContext ctx = null!;
                void Run(Local local) { if (ctx.IsMainRank) {|VLM1001:local.Exchange()|}; }
            }
            """);

        [Fact]
        public Task EventHandlerInvokedOnOneRank() => Analyzer(Prelude + """

            class Events
            {
                readonly TrainerContext ctx;
                public event Action? Done;
                public Events(TrainerContext c) { ctx = c; Done += () => ctx.Barrier(); }
                public void Fire() { if (ctx.IsMainRank) {|VLM1001:Done?.Invoke()|}; }
            }
            """);

        [Fact]
        public Task DelegateFieldAssignedInConstructor() => Analyzer(Prelude + """

            class Loop
            {
                readonly TrainerContext ctx;
                readonly Action _sync;
                public Loop(TrainerContext c) { ctx = c; _sync = () => ctx.Barrier(); }
                public void Step() { if (ctx.Rank == 0) {|VLM1001:_sync()|}; }
            }
            """);

        [Fact]
        public Task DelegatePropertyAssignedAMethodGroupElsewhere() => Analyzer(Prelude + """

            class Loop
            {
                public TrainerContext Ctx = null!;
                public Action? OnStep { get; set; }
                public void Step() { if (Ctx.IsMainRank) {|VLM1001:OnStep!()|}; }
            }
            class Setup
            {
                TrainerContext ctx = null!;
                void Sync() => ctx.Barrier();
                void Wire(Loop loop) => loop.OnStep = Sync;
            }
            """);
    }

    public class MustNotReport
    {
        [Fact]
        public Task InterfaceWhoseImplementationsHaveNoCollectives() => Analyzer(Body("""
            IHook h = Ask() ? new LogHook() : new QuietHook();
            if (ctx.IsMainRank) h.Run();
            """) + QuietHooks);

        [Fact]
        public Task InterfaceCalledOnEveryRank() => Analyzer(Body("""
            IHook h = Ask() ? new SyncHook() : new QuietHook();
            h.Run();
            """) + Hooks);

        [Fact]
        public Task AbstractBaseCalledOnEveryRank() => Analyzer(Body("""
            StepBase s = new SyncStep();
            if (ctx.Rank == 0) Log();
            s.Apply(ctx);
            """) + Steps);

        [Fact]
        public Task GenericInterfaceOnBothArms() => Analyzer(Body("""
            IReducer<Tensor> r = new MeanReducer();
            if (ctx.IsMainRank) r.Reduce(g); else r.Reduce(g);
            """) + GenericReducer);

        [Fact]
        public Task DefaultInterfaceMethodOverriddenByEveryone() => Analyzer(Prelude + """

            interface ISyncPoint { void Sync() { } }
            sealed class Point : ISyncPoint { }
            class User
            {
                TrainerContext ctx = null!;
                void Run(ISyncPoint p) { if (ctx.IsMainRank) p.Sync(); }
            }
            """);

        [Fact]
        public Task EventHandlerWithoutCollectives() => Analyzer(Prelude + """

            class Events
            {
                readonly TrainerContext ctx;
                public event Action? Done;
                public Events(TrainerContext c) { ctx = c; Done += () => Console.WriteLine("done"); }
                public void Fire() { if (ctx.IsMainRank) Done?.Invoke(); }
            }
            """);

        [Fact]
        public Task DelegateFieldAssignedANonCollective() => Analyzer(Prelude + """

            class Loop
            {
                readonly TrainerContext ctx;
                readonly Action _log;
                public Loop(TrainerContext c) { ctx = c; _log = () => Console.WriteLine("step"); }
                public void Step() { if (ctx.Rank == 0) _log(); }
            }
            """);

        [Fact]
        public Task NonVirtualCallOfAClassWithCollectiveSubclass() => Analyzer(Prelude + """

            class Base { public void Log() { } public virtual void Sync() { } }
            class Derived : Base { public TrainerContext Ctx = null!; public override void Sync() => Ctx.Barrier(); }
            class User
            {
                TrainerContext ctx = null!;
                void Run(Base b) { if (ctx.IsMainRank) b.Log(); }
            }
            """);
    }
}
