using static TorchSharp.torch;

namespace VectorLm.Models;

/// <summary>
/// A module whose projections an adapter can wrap (<see cref="LoraLinear"/>): the decoder layer's attention and MLP.
/// Forward calls whatever module is in the slot, so wrapping changes no forward code.
/// </summary>
internal interface ILoraHost
{
    /// <summary>PEFT's names of the projections this module owns (<c>q_proj</c>, ...).</summary>
    IReadOnlyList<string> ProjectionNames { get; }

    /// <summary>The module now in slot <paramref name="name"/>.</summary>
    nn.Module<Tensor, Tensor> GetProjection(string name);

    /// <summary>Puts <paramref name="module"/> into slot <paramref name="name"/>, registered under that name.</summary>
    void SetProjection(string name, nn.Module<Tensor, Tensor> module);
}
