using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VectorLm.Models;

/// <summary>
/// A projection with a LoRA adapter: <c>x Wᵀ (+ b) + scale · dropout(x) Aᵀ Bᵀ</c>. It takes the place of the
/// <c>nn.Linear</c> it wraps and registers that layer's own <c>weight</c> (and <c>bias</c>) under the same names, so
/// parameter names stay the Hugging Face ones (<c>...q_proj.weight</c>) and the adapter adds PEFT's
/// <c>...q_proj.lora_A.weight</c> and <c>...q_proj.lora_B.weight</c>.
/// </summary>
internal sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    // Registered by RegisterComponents under the field names; Module.to() replaces a moved parameter and updates its
    // field. No other Module or Tensor fields: they would be registered too.
    readonly Parameter weight;
    readonly Parameter? bias;
    readonly Linear lora_A, lora_B;

    /// <summary>The factor applied to <c>B A x</c>.</summary>
    public double Scale { get; set; }

    /// <summary>Dropout probability on the adapter's input while training.</summary>
    public double DropoutProbability { get; set; }

    public LoraLinear(Linear baseLayer, LoraConfig config, Generator generator) : base("LoraLinear")
    {
        weight = baseLayer.weight!;
        bias = baseLayer.bias;
        long outFeatures = weight.shape[0], inFeatures = weight.shape[1];
        lora_A = nn.Linear(inFeatures, config.R, hasBias: false, device: weight.device, dtype: weight.dtype);
        lora_B = nn.Linear(config.R, outFeatures, hasBias: false, device: weight.device, dtype: weight.dtype);
        using (no_grad())
        {
            // As PEFT: A ~ kaiming_uniform(a = sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0, so the output starts unchanged.
            double bound = 1.0 / Math.Sqrt(inFeatures);
            using var draw = rand(lora_A.weight!.shape, dtype: ScalarType.Float32, generator: generator);
            lora_A.weight!.copy_(draw.mul_(2 * bound).sub_(bound));
            lora_B.weight!.zero_();
        }
        Scale = config.Scale;
        DropoutProbability = config.Dropout;
        RegisterComponents();
    }

    /// <summary>The adapter's down projection <c>A</c> [r, in].</summary>
    public Parameter A => lora_A.weight!;

    /// <summary>The adapter's up projection <c>B</c> [out, r].</summary>
    public Parameter B => lora_B.weight!;

    /// <summary>The base projection's weight [out, in].</summary>
    public Parameter Weight => weight;

    public override Tensor forward(Tensor x)
    {
        var result = F.linear(x, weight, bias);
        var input = DropoutProbability > 0 ? F.dropout(x, DropoutProbability, training) : x;
        return result + lora_B.forward(lora_A.forward(input)) * Scale;
    }

    /// <summary>Adds <c>scale · B A</c> to the base weight (in place, no autograd).</summary>
    public void MergeIntoBase()
    {
        using var _ = no_grad();
        using var delta = B.matmul(A);
        weight.add_(delta, alpha: Scale);
    }

    /// <summary>
    /// A plain linear layer over this module's current base parameters. A new layer, not the wrapped one: after
    /// Module.to() the wrapped layer's own parameters are gone, and its setters then fail.
    /// </summary>
    public Linear ToLinear()
    {
        var layer = nn.Linear(weight.shape[1], weight.shape[0], hasBias: bias is not null, device: weight.device, dtype: weight.dtype);
        layer.weight = weight;
        if (bias is not null) layer.bias = bias;
        return layer;
    }

    /// <summary>Frees the adapter's tensors; the base parameters belong to the wrapped layer and stay.</summary>
    public void DisposeAdapter()
    {
        lora_A.Dispose();
        lora_B.Dispose();
    }
}
