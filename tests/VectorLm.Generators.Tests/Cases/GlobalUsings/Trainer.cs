/// <summary>A trainer in the global namespace that relies on global usings only.</summary>
[DistributedTrainer]
public partial class GlobalTrainer
{
    /// <summary>Prompts to sample.</summary>
    [Option] public string[] Prompts { get; init; } = ["hi"];

    public ISamplingEngine? Sampler { get; init; }

    public void Train(TrainerContext ctx)
    {
        using var model = nn.Linear(1, 1);
        var optimizer = optim.Adam(model.parameters());
        optimizer.step();
        IReadOnlyList<Completion>? completions = Sampler?.Generate(Prompts);
        GC.KeepAlive(completions);
    }
}
