using static VectorLm.Analyzers.Tests.Verify;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// The syntactic pre-filter (<c>CollectiveNames</c>) skips bodies that name nothing that can lead to a collective. Calls
/// that the syntax does not name (foreach, using, indexers, constructor chaining, target-typed <c>new()</c>) must still
/// count, or these deadlocks would go unreported. In each case the flagged method names no source member: the
/// receiver is a field, whose name alone leads nowhere.
/// </summary>
public class CollectiveNamesTests
{
    static string Subject(string field, string statement, string types) => Prelude + $$"""

        class Subject
        {
            TrainerContext ctx = null!;
            {{field}}
            void Run()
            {
                if (ctx.IsMainRank) {{statement}}
            }
        }
        {{types}}
        """;

    [Fact]
    public Task ForeachOverASourceEnumerable() => Analyzer(Subject("Shards _shards = null!;",
        "{ foreach (var s in {|VLM1001:_shards|}) Console.WriteLine(s); }", """
        sealed class Shards
        {
            public TrainerContext Ctx = null!;
            public IEnumerator<int> GetEnumerator() { Ctx.Barrier(); yield return 1; }
        }
        """));

    [Fact]
    public Task UsingASourceDisposable() => Analyzer(Subject("SyncScope _scope = null!;",
        "{ using ({|VLM1001:_scope|}) Console.WriteLine(); }", """
        sealed class SyncScope : IDisposable
        {
            public TrainerContext Ctx = null!;
            public void Dispose() => Ctx.Barrier();
        }
        """));

    [Fact]
    public Task SourceIndexer() => Analyzer(Subject("Table _table = null!;",
        "Console.WriteLine({|VLM1001:_table[0]|});", """
        sealed class Table
        {
            public TrainerContext Ctx = null!;
            public int this[int i] { get { Ctx.Barrier(); return i; } }
        }
        """));

    [Fact]
    public Task TargetTypedNewOfASourceType() => Analyzer(Subject("Syncer _syncer = null!;",
        "_syncer = {|VLM1001:new(ctx)|};", """
        sealed class Syncer { public Syncer(TrainerContext ctx) => ctx.Barrier(); }
        """));

    [Fact]
    public Task ImplicitBaseConstructorCall() => Analyzer(Subject("",
        "{|VLM1001:new Derived()|};", """
        class Base { public Base() { Shared.Ctx.Barrier(); } }
        sealed class Derived : Base { public Derived() { } }
        static class Shared { public static TrainerContext Ctx = null!; }
        """));
}
