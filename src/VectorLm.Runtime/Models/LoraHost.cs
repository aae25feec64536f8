using static TorchSharp.torch;

namespace VectorLm.Models;

/// <summary>
/// A module whose projections an adapter can wrap (<see cref="LoraLinear"/>): the decoder layer's attention and MLP.
/// Each projection sits in a <see cref="Slot"/> registered under its Hugging Face (and PEFT) name; forward calls
/// whatever module is in the slot, so wrapping changes no forward code.
/// </summary>
internal abstract class LoraHost(string name) : nn.Module<Tensor, Tensor>(name)
{
    readonly List<Slot> _slots = [];

    /// <summary>A projection's place in its host; <see cref="LoraHost.SetProjection"/> swaps the module in it.</summary>
    protected sealed class Slot(string name, nn.Module<Tensor, Tensor> module)
    {
        /// <summary>The Hugging Face name (<c>q_proj</c>, ...), under which the module is registered.</summary>
        public string Name { get; } = name;

        /// <summary>The module now in the slot: a linear layer, or the <see cref="LoraLinear"/> that wraps it.</summary>
        public nn.Module<Tensor, Tensor> Module { get; set; } = module;

        /// <summary>Runs the module now in the slot.</summary>
        public Tensor forward(Tensor x) => Module.forward(x);
    }

    /// <summary>PEFT's names of the projections this module owns (<c>q_proj</c>, ...), in registration order.</summary>
    public IEnumerable<string> ProjectionNames => _slots.Select(s => s.Name);

    /// <summary>Registers <paramref name="module"/> under <paramref name="name"/>; the order of calls is the parameter order.</summary>
    protected Slot AddProjection(string name, nn.Module<Tensor, Tensor> module)
    {
        var slot = new Slot(name, module);
        register_module(name, module);
        _slots.Add(slot);
        return slot;
    }

    /// <summary>The module now in slot <paramref name="name"/>.</summary>
    public nn.Module<Tensor, Tensor> GetProjection(string name) => Find(name).Module;

    /// <summary>Puts <paramref name="module"/> into slot <paramref name="name"/>, registered under that name.</summary>
    public void SetProjection(string name, nn.Module<Tensor, Tensor> module)
    {
        var slot = Find(name);
        register_module(name, null!); // unregisters
        register_module(name, module);
        slot.Module = module;
    }

    Slot Find(string name) =>
        _slots.Find(s => s.Name == name) ?? throw new ArgumentOutOfRangeException(nameof(name), name, null);
}
