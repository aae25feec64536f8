using TorchSharp;
using VectorLm;

namespace Outer
{
    namespace Inner.Deep
    {
        /// <summary>A trainer two namespace blocks deep.</summary>
        [DistributedTrainer]
        partial class Nested
        {
            [Option] public int Steps { get; set; } = 1;

            public void Train(TrainerContext ctx)
            {
                using var model = torch.nn.Linear(1, 1);
                var optimizer = torch.optim.Adam(model.parameters());
                optimizer.step();
            }
        }
    }
}
