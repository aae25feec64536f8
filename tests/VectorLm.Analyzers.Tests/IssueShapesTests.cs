using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>The shapes listed in the analyzer issue: each must-report and must-not-report case, as written there.</summary>
public class IssueShapesTests
{
    public class MustReport
    {
        [Fact]
        public Task RankEqualsZeroGuardsGenerate() => Analyzer(Body("""
            if (ctx.Rank == 0) {|VLM1001:sampler.Generate(p)|};
            """));

        [Fact]
        public Task MainRankGuardsBarrier() => Analyzer(Body("""
            if (ctx.IsMainRank) {|VLM1001:ctx.Barrier()|};
            """));

        [Fact]
        public Task ReturnOnNonZeroRankSkipsGenerate() => Analyzer(Body("""
            if (ctx.Rank != 0) return;
            {|VLM1003:sampler.Generate(p)|};
            """));

        [Fact]
        public Task LoopBoundedByRank() => Analyzer(Body("""
            for (int i = 0; i < ctx.Rank; i++) {|VLM1002:ctx.AllReduce(g)|};
            """));

        [Fact]
        public Task TaintedLocal() => Analyzer(Body("""
            var lead = ctx.Rank == 0;
            if (lead) {|VLM1001:sampler.Generate(p)|};
            """));

        [Fact]
        public Task FieldSetInOneMethodTestedInAnother() => Analyzer(Prelude + """

            class Trainer
            {
                TrainerContext ctx = null!;
                bool _lead;
                void Init() { _lead = ctx.Rank == 0; }
                void Step() { if (_lead) {|VLM1001:ctx.Barrier()|}; }
            }
            """);

        [Fact]
        public Task LocalFunctionReturningRankTest() => Analyzer(Body("""
            bool IsLead() => ctx.Rank == 0;
            if (IsLead()) {|VLM1001:sampler.Generate(p)|};
            """));

        [Fact]
        public Task ConditionalExpression() => Analyzer(Body("""
            var x = ctx.IsMainRank ? {|VLM1001:sampler.Generate(a)|} : null;
            """));

        [Fact]
        public Task ShortCircuitAnd() => Analyzer(Body("""
            if (ctx.IsMainRank && {|VLM1001:sampler.Generate(p)|}.Count > 0) { }
            """));

        [Fact]
        public Task SwitchOnRank() => Analyzer(Body("""
            switch (ctx.Rank) { case 0: {|VLM1001:ctx.Barrier()|}; break; }
            """));

        [Fact]
        public Task DifferentCountsOnTheTwoArms() => Analyzer(Body("""
            if (ctx.IsMainRank) { {|VLM1001:ctx.Barrier()|}; {|VLM1001:ctx.Barrier()|}; } else { {|VLM1001:ctx.Barrier()|}; }
            """));

        [Fact]
        public Task LocalFunctionPerformingCollective() => Analyzer(Body("""
            void Sync() => ctx.Barrier();
            if (ctx.Rank == 0) {|VLM1001:Sync()|};
            """));

        [Fact]
        public Task ContinueOnOddRanks() => Analyzer(Body("""
            for (int i = 0; i < 10; i++) { if (ctx.Rank % 2 == 1) continue; {|VLM1003:ctx.AllReduce(g)|}; }
            """));

        [Fact]
        public Task ThrowOnOneRank() => Analyzer(Body("""
            if (ctx.Rank == 3) throw new InvalidOperationException();
            {|VLM1003:ctx.Barrier()|};
            """));

        [Fact]
        public Task OptimizerStepInTrainer() => Analyzer(Prelude + """

            [DistributedTrainer]
            partial class Trainer
            {
                void Train(TrainerContext ctx, torch.optim.Optimizer optimizer)
                {
                    if (ctx.IsMainRank) {|VLM1001:optimizer.step()|};
                }
            }
            """);
    }

    public class MustNotReport
    {
        [Fact]
        public Task Unconditional() => Analyzer(Body("sampler.Generate(p);"));

        [Fact]
        public Task WorldSizeIsUniform() => Analyzer(Body("if (ctx.WorldSize > 1) ctx.Barrier();"));

        [Fact]
        public Task StepCounterIsUniform() => Analyzer(Body("if (step % every == 0) sampler.Generate(p);"));

        [Fact]
        public Task BothArmsGenerate() => Analyzer(Body("if (ctx.IsMainRank) sampler.Generate(a); else sampler.Generate(b);"));

        [Fact]
        public Task LoggingAndSavingOnMainRank() => Analyzer(Body("if (ctx.IsMainRank) { Log(); Save(); } ctx.Barrier();"));

        [Fact]
        public Task EarlyReturnAfterLastCollective() => Analyzer(Body("ctx.Barrier(); if (ctx.Rank != 0) return; Save();"));

        [Fact]
        public Task BroadcastSanitises() => Analyzer(Body("var go = ctx.BroadcastObject(ctx.IsMainRank && Ask()); if (go) sampler.Generate(p);"));

        [Fact]
        public Task OverwrittenWithConstant() => Analyzer(Body("var r = ctx.Rank; r = 0; if (r == 0) ctx.Barrier();"));

        [Fact]
        public Task EverySwitchSectionSynchronises() => Analyzer(Body(
            "switch (ctx.Rank % 2) { case 0: ctx.Barrier(); break; default: ctx.Barrier(); break; }"));

        [Fact]
        public Task SaveOnlyOnLead() => Analyzer(Body("void SaveIfLead() { if (ctx.Rank != 0) return; Save(); } SaveIfLead();"));

        [Fact]
        public Task OptimizerStepOutsideTrainerIsNotACollective() => Analyzer(Prelude + """

            class NotATrainer
            {
                void Train(TrainerContext ctx, torch.optim.Optimizer optimizer)
                {
                    if (ctx.IsMainRank) optimizer.step();
                }
            }
            """);
    }
}
