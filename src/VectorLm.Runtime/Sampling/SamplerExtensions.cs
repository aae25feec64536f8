using VectorLm.Models;
using VectorLm.Tokenization;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>Creates the colocated sampler of a training job.</summary>
public static class SamplerExtensions
{
    /// <summary>
    /// A sampling engine following <paramref name="model"/>: built from its parameters, marked stale after every
    /// optimizer step of <paramref name="context"/> and updated in place on the next generate. By default the parity
    /// gate compares its logits with <paramref name="model"/>'s once, at creation. <see cref="EngineOptions.Backend"/>
    /// picks the engine; <see cref="SamplingBackend.Auto"/> takes the torch engine when the model is on a CUDA device and,
    /// on the CPU, the torch engine for samplers of at least <see cref="CpuTorchMinSequences"/> slots and llama.cpp for
    /// smaller ones (see <see cref="ResolveBackend"/>). A LoRA adapter on the model
    /// (<see cref="LlamaModel.AddLora"/>) is applied by either engine on top of the base, and a sync after a step then
    /// writes only the adapter's tensors.
    /// </summary>
    public static IColocatedSampler CreateSampler(this TrainerContext context, LlamaModel model, Tokenizer tokenizer, EngineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        // Checkpoints often round vocab_size up past the tokenizer (Qwen2): the extra rows are never produced from text.
        if (tokenizer.VocabSize > model.Config.VocabSize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabSize} tokens; the model's vocab_size is only {model.Config.VocabSize}.", nameof(tokenizer));
        options ??= new EngineOptions();
        Func<Tensor, Tensor> reference = ids =>
        {
            using var _ = no_grad();
            // The engine holds the parameters' own values (the f32 masters under bf16-mixed): compare with them
            // in full precision, not with an autocast or TF32 forward. It never drops out either: compare with the
            // model in eval mode (LoRA dropout), then restore its mode.
            using var full = Training.Precision.Full32.Use();
            bool training = model.training;
            model.eval();
            try { return model.forward(ids); }
            finally { if (training) model.train(); }
        };
        var architecture = Architecture(model.Config);
        var codec = new TokenizerCodec(tokenizer);
        var lora = new LoraSource(model.AdapterWeights, () => model.BaseRevision);
        if (ResolveBackend(options.Backend, model.parameters().First().device, options.MaxSequences) == SamplingBackend.Torch)
            return TorchSamplingEngine.Create(context, architecture, () => Parameters(model), codec, reference, options, lora);
        return LlamaSamplingEngine.Create(context, architecture, () => Parameters(model), codec, reference, options, lora);
    }

    /// <summary>
    /// Sequence slots (<see cref="EngineOptions.MaxSequences"/>) from which <see cref="SamplingBackend.Auto"/> builds the
    /// torch engine on the CPU, where the `sampling` benchmark (58M model, 2 threads) measured llama.cpp (f16) 1.15x faster
    /// at 8 sequences, the two about even at 16 and the torch engine (f32, batched matmuls) 1.3x faster at 32 and 1.6x at
    /// 64 (docs/sampling-torch.md, "On the CPU").
    /// </summary>
    public const int CpuTorchMinSequences = 16;

    /// <summary>
    /// The engine <paramref name="backend"/> means for a model on <paramref name="device"/> and a sampler of
    /// <paramref name="maxSequences"/> slots. <see cref="SamplingBackend.Auto"/> is <see cref="SamplingBackend.Torch"/> on
    /// CUDA; on the CPU it is <see cref="SamplingBackend.Torch"/> from <see cref="CpuTorchMinSequences"/> slots and
    /// <see cref="SamplingBackend.LlamaCpp"/> below. The choice is made once per sampler, from the batch it is sized for,
    /// not per call from the batch at hand: the two engines differ in numerics and random streams, and a prompt's samples
    /// must not depend on which other prompts share its call.
    /// </summary>
    public static SamplingBackend ResolveBackend(SamplingBackend backend, Device device, int maxSequences) =>
        backend != SamplingBackend.Auto ? backend
        : device.type == TorchSharp.DeviceType.CUDA || maxSequences >= CpuTorchMinSequences ? SamplingBackend.Torch
        : SamplingBackend.LlamaCpp;

    /// <summary>
    /// The weight type an engine uses: <paramref name="requested"/> when set, else f16 for
    /// <see cref="SamplingBackend.LlamaCpp"/> (llama.cpp's CPU kernels have f16 fast paths), bf16 for
    /// <see cref="SamplingBackend.Torch"/> on CUDA and f32 for <see cref="SamplingBackend.Torch"/> on the CPU, where
    /// libtorch's f16/bf16 matmuls are slow without hardware support.
    /// </summary>
    /// <param name="requested"><see cref="EngineOptions.WeightType"/>.</param>
    /// <param name="engine">The resolved engine (not <see cref="SamplingBackend.Auto"/>; see <see cref="ResolveBackend"/>).</param>
    /// <param name="device">The device the engine decodes on.</param>
    public static EngineWeightType ResolveWeightType(EngineWeightType? requested, SamplingBackend engine, Device device) =>
        requested ?? engine switch
        {
            SamplingBackend.LlamaCpp => EngineWeightType.F16,
            SamplingBackend.Torch => device.type == TorchSharp.DeviceType.CUDA ? EngineWeightType.BF16 : EngineWeightType.F32,
            _ => throw new ArgumentException($"Resolve the backend before its weight type; got {engine}.", nameof(engine)),
        };

    /// <summary>The engine's view of a Hugging Face Llama config.</summary>
    public static LlamaArchitecture Architecture(LlamaConfig c) =>
        new(c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim,
            (float)c.RmsNormEps, (float)c.RopeTheta, c.MaxPositionEmbeddings, c.TieWordEmbeddings, c.RopeScaling);

    internal static IReadOnlyDictionary<string, Tensor> Parameters(LlamaModel model) =>
        model.BaseParameterDictionary();   // the adapter goes in as an adapter
}

/// <summary>The shared <see cref="Tokenizer"/> as the engine's <see cref="ITokenCodec"/>.</summary>
public sealed class TokenizerCodec(Tokenizer tokenizer) : ITokenCodec
{
    readonly int[] _types = tokenizer.Types.Select(t => (int)t).ToArray();

    /// <inheritdoc />
    public int[] Encode(string text) => tokenizer.Encode(text);

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> ids) => tokenizer.Decode(ids);

    /// <inheritdoc />
    public IReadOnlyList<string> Pieces => tokenizer.Pieces;

    /// <inheritdoc />
    public IReadOnlyList<float> Scores => tokenizer.Scores;

    /// <inheritdoc />
    public IReadOnlyList<int> TokenTypes => _types;

    /// <inheritdoc />
    public int BosId => tokenizer.BosId;

    /// <inheritdoc />
    public int EosId => tokenizer.EosId;

    /// <inheritdoc />
    public int UnkId => tokenizer.UnkId;

    /// <inheritdoc />
    public bool AddBos => tokenizer.AddBosToken && tokenizer.BosId >= 0;

    /// <inheritdoc />
    public GgufVocabulary Vocabulary => tokenizer.ToGgufVocabulary();
}
