using VectorLm;

namespace Samples.Broken;

/// <summary>Not partial: the analyzer reports VLM0001 and the generator emits nothing for it.</summary>
[DistributedTrainer]
public class NotPartial
{
    public void Train(TrainerContext ctx)
    {
    }
}
