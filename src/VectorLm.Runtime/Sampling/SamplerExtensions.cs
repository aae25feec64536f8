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
    /// picks the engine; <see cref="SamplingBackend.Auto"/> takes the torch engine when the model is on a CUDA device and
    /// llama.cpp on the CPU (see <see cref="ResolveBackend"/>). A LoRA adapter on the model
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
        if (ResolveBackend(options.Backend, model.parameters().First().device) == SamplingBackend.Torch)
            return TorchSamplingEngine.Create(context, architecture, () => Parameters(model), codec, reference, options, lora);
        return LlamaSamplingEngine.Create(context, architecture, () => Parameters(model), codec, reference, options, lora);
    }

    /// <summary>
    /// The engine <paramref name="backend"/> means for a model on <paramref name="device"/>: <see cref="SamplingBackend.Auto"/>
    /// is <see cref="SamplingBackend.Torch"/> on CUDA and <see cref="SamplingBackend.LlamaCpp"/> on the CPU, where the
    /// llama.cpp engine measured faster than TorchSharp decoding (bench/results/sampling.json).
    /// </summary>
    public static SamplingBackend ResolveBackend(SamplingBackend backend, Device device) =>
        backend != SamplingBackend.Auto ? backend
        : device.type == TorchSharp.DeviceType.CUDA ? SamplingBackend.Torch
        : SamplingBackend.LlamaCpp;

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
