using VectorLm;

namespace Samples.Pair;

/// <summary>Not chosen: it gets Run but no Main.</summary>
[DistributedTrainer]
public partial class Pretrain
{
    public void Train(TrainerContext ctx)
    {
    }
}

/// <summary>Chosen by the VectorLmTrainer MSBuild property.</summary>
[DistributedTrainer]
public partial class Finetune
{
    public void Train(TrainerContext ctx)
    {
    }
}
