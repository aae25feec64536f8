using System.Threading;
using System.Threading.Tasks;
using VectorLm;

namespace Samples.TopLevel;

[DistributedTrainer]
public partial class TopLevelTrainer
{
    public Task TrainAsync(TrainerContext ctx, CancellationToken ct) => Task.CompletedTask;
}
