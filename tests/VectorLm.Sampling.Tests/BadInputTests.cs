namespace VectorLm.Sampling.Tests;

public class BadInputTests : IDisposable
{
    readonly ReferenceLlama _model = new(ReferenceLlama.TinyArch(), 30);
    readonly LlamaSamplingEngine _engine;

    public BadInputTests() =>
        _engine = _model.CreateEngine(new EngineOptions { ContextLength = 16, MaxSequences = 2, BatchTokens = 16, Threads = 1, ParityCheck = ParityCheckMode.Never });

    public void Dispose()
    {
        _engine.Dispose();
        _model.Dispose();
    }

    [Fact]
    public void Empty_prompt_list_gives_an_empty_result() => Assert.Empty(_engine.Generate([]));

    [Fact]
    public void Too_long_prompt_names_its_index_and_both_lengths()
    {
        var e = Assert.Throws<ArgumentException>(() => _engine.Generate(["ok", new string('z', 40)]));
        Assert.Contains("Prompt 1", e.Message);
        Assert.Contains("41", e.Message);   // 40 bytes plus BOS
        Assert.Contains("16", e.Message);
    }

    [Theory]
    [InlineData(0, 1f, 1f, 5)]
    [InlineData(1, -0.5f, 1f, 5)]
    [InlineData(1, 1f, 0f, 5)]
    [InlineData(1, 1f, 1.5f, 5)]
    [InlineData(1, 1f, 1f, 0)]
    public void Invalid_sampling_params_are_argument_errors(int n, float temperature, float topP, int maxTokens)
    {
        var p = new SamplingParams { N = n, Temperature = temperature, TopP = topP, MaxNewTokens = maxTokens };
        Assert.Throws<ArgumentException>(() => _engine.Generate(["a"], p));
    }

    [Fact]
    public void Use_after_dispose_throws_object_disposed()
    {
        var engine = _model.CreateEngine(new EngineOptions { ContextLength = 16, MaxSequences = 1, BatchTokens = 16, Threads = 1 });
        engine.Dispose();
        engine.Dispose();   // idempotent
        Assert.Throws<ObjectDisposedException>(() => engine.Generate(["a"]));
        Assert.Throws<ObjectDisposedException>(() => engine.SyncWeights());
    }

    [Fact]
    public void Concurrent_calls_are_serialised_and_agree_with_sequential_ones()
    {
        var p = SamplingParams.Greedy(6);
        var expected = _engine.Generate(["abc", "de"], p).Select(c => c.Samples[0].TokenIds.ToArray()).ToList();
        var results = new IReadOnlyList<Completion>[4];
        // Hold the engine's lock while the calls start, so they really overlap.
        _engine.UnderLock(() =>
        {
            var threads = Enumerable.Range(0, results.Length).Select(i => new Thread(() => results[i] = _engine.Generate(["abc", "de"], p))).ToList();
            threads.ForEach(t => t.Start());
            Thread.Sleep(100);
            Assert.All(results, Assert.Null);   // all blocked behind the lock
            _threads = threads;
        });
        _threads!.ForEach(t => t.Join());
        Assert.All(results, r => Assert.Equal(expected, r.Select(c => c.Samples[0].TokenIds.ToArray())));
    }

    List<Thread>? _threads;
}
