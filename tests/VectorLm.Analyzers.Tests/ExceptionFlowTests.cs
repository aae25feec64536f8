using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// Throws follow Roslyn's try/catch regions: a rank-dependent throw caught in the method before any collective is not
/// an early exit; one that escapes (uncaught type, a filter that may reject it, a rethrow) is.
/// </summary>
public class ExceptionFlowTests
{
    public class MustReport
    {
        [Fact]
        public Task ThrowOfATypeTheCatchDoesNotHandle() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException(); Save(); } catch (ArgumentException) { Log(); }
            {|VLM1003:ctx.Barrier()|};
            """));

        [Fact]
        public Task CollectiveInsideTheTryAfterTheThrow() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException(); {|VLM1003:ctx.Barrier()|}; } catch (InvalidOperationException) { Log(); }
            """));

        [Fact]
        public Task CatchWhenMayRejectTheException() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException("x"); Save(); }
            catch (InvalidOperationException e) when (e.Message.Length > 3) { Log(); }
            {|VLM1003:ctx.Barrier()|};
            """));

        [Fact]
        public Task RethrowLeavesTheMethod() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException(); Save(); }
            catch (InvalidOperationException) { Log(); throw; }
            {|VLM1003:ctx.Barrier()|};
            """));
    }

    public class MustNotReport
    {
        [Fact]
        public Task ThrowCaughtBeforeTheCollective() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException(); Save(); } catch (InvalidOperationException) { Log(); }
            ctx.Barrier();
            """));

        [Fact]
        public Task ThrowCaughtByABaseType() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new ArgumentNullException("p"); Save(); } catch (ArgumentException) { Log(); }
            ctx.Barrier();
            """));

        [Fact]
        public Task CatchWhenFollowedByACatchAll() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException("x"); Save(); }
            catch (InvalidOperationException e) when (e.Message.Length > 3) { Log(); }
            catch (Exception) { Save(); }
            ctx.Barrier();
            """));

        [Fact]
        public Task RethrowCaughtByAnOuterTry() => Analyzer(Body("""
            try
            {
                try { if (ctx.Rank == 3) throw new InvalidOperationException(); Save(); }
                catch (InvalidOperationException) { Log(); throw; }
            }
            catch (Exception) { Log(); }
            ctx.Barrier();
            """));

        [Fact]
        public Task BothPathsPerformTheSameCollective() => Analyzer(Body("""
            try { if (ctx.Rank == 3) throw new InvalidOperationException(); ctx.Barrier(); } catch (InvalidOperationException) { ctx.Barrier(); }
            """));
    }
}
