using VectorLm;

namespace Samples.Custom;

[DistributedTrainer]
public partial class CustomTrainer
{
    public void Train(TrainerContext ctx)
    {
    }
}
