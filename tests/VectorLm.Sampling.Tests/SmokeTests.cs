namespace VectorLm.Sampling.Tests;

public class SmokeTests
{
    [Fact]
    public void Builds_and_passes_parity()
    {
        using var model = new ReferenceLlama(ReferenceLlama.TinyArch(), 1);
        using var engine = model.CreateEngine(new EngineOptions { WeightType = EngineWeightType.F32, ContextLength = 64, MaxSequences = 4, Threads = 1, ParityCheck = ParityCheckMode.Never });
        var report = engine.CheckParity();
        Console.WriteLine(report);
        var r = engine.Generate(["hello world"], SamplingParams.Greedy(8));
        Console.WriteLine(string.Join(",", r[0].Samples[0].TokenIds));
        Console.WriteLine(string.Join(",", model.Greedy(engine.TokenizePrompt("hello world"), 8)));
    }
}
