using TorchSharp.Modules;

namespace VectorLm.Models;

/// <summary>
/// One adapted projection, as any engine needs it to apply the adapter: <c>y = W x + Scale · B A x</c>.
/// </summary>
/// <param name="Module">PEFT's module name without the <c>base_model.model.</c> prefix (<c>model.layers.0.self_attn.q_proj</c>).</param>
/// <param name="BaseWeight">The base weight's parameter name (<c>model.layers.0.self_attn.q_proj.weight</c>).</param>
/// <param name="A">The live down projection [r, in] (the trainer's parameter, not a copy).</param>
/// <param name="B">The live up projection [out, r].</param>
/// <param name="Scale"><c>alpha / r</c>, or <c>alpha / sqrt(r)</c> with rsLoRA.</param>
public sealed record LoraWeights(string Module, string BaseWeight, Parameter A, Parameter B, double Scale);
