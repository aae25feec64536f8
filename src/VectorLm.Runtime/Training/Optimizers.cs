using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using VectorLm.Hosting;
using static TorchSharp.torch;

namespace VectorLm.Training;

/// <summary>Builds optimizers with the usual language-model parameter groups.</summary>
public static class Optimizers
{
    /// <summary>
    /// Whether weight decay applies to a parameter: matrices yes; one-dimensional parameters (norm weights, biases)
    /// no, as in Hugging Face and nanoGPT.
    /// </summary>
    public static bool Decays(string name, Tensor parameter) =>
        parameter.dim() >= 2 && !name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal);

    /// <summary>
    /// AdamW with two groups: decayed matrices (group 0) and undecayed norms/biases/1-D parameters (group 1). The
    /// optimizer is a <see cref="FlatAdamW"/>: on CUDA each group's update runs over flat buffers (PyTorch's
    /// multi-tensor AdamW); on the CPU it steps parameter by parameter, as TorchSharp's AdamW.
    /// </summary>
    /// <remarks>
    /// Under a distributed trainer (<see cref="TrainerContextScope.Current"/> with more than one rank) this is where the
    /// model meets the job: every parameter of <paramref name="module"/> is overwritten with rank 0's value before the
    /// optimizer is returned (a collective), as PyTorch's DDP does at construction, so every rank starts from the same
    /// weights before the first forward.
    /// </remarks>
    [Collective]
    public static AdamW AdamW(nn.Module module, double learningRate, double weightDecay = 0.1,
        double beta1 = 0.9, double beta2 = 0.95, double eps = 1e-8,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(module);
        TrainerContextScope.Current?.BroadcastParameters(module.parameters(), member, file, line);
        var named = module.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var decay = named.Where(p => Decays(p.name, p.parameter)).Select(p => p.parameter).ToList();
        var noDecay = named.Where(p => !Decays(p.name, p.parameter)).Select(p => p.parameter).ToList();
        var groups = new List<AdamW.ParamGroup>
        {
            new(decay, learningRate, beta1, beta2, eps, weightDecay, false, false),
            new(noDecay, learningRate, beta1, beta2, eps, 0.0, false, false),
        };
        // FlatAdamW keeps its flat buffers out of any DisposeScope the caller has open.
        return new FlatAdamW(groups.Where(g => g.Parameters.Any()), learningRate, beta1, beta2, eps, weightDecay);
    }
}
