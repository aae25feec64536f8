namespace VectorLm.Sampling;

/// <summary>Element type of the engine's weight matrices (norm vectors stay f32).</summary>
public enum EngineWeightType
{
    /// <summary>32-bit float: exact copy of f32 trainer weights.</summary>
    F32,
    /// <summary>16-bit IEEE half: half the memory and copy time, logits within about 5e-2 of f32.</summary>
    F16,
    /// <summary>bfloat16.</summary>
    BF16,
}

/// <summary>When the engine compares its logits with the trainer model's (see <see cref="ColocatedSampler.CheckParity"/>).</summary>
public enum ParityCheckMode
{
    /// <summary>Never automatically.</summary>
    Never,
    /// <summary>Once, when the engine is built (the first sync of its weights).</summary>
    FirstSync,
    /// <summary>After every weight sync (slow; for debugging conversions).</summary>
    EverySync,
}

/// <summary>How ranks share a distributed <c>ISamplingEngine.Generate</c>.</summary>
public enum DistributedGenerateMode
{
    /// <summary>Each rank generates every WorldSize-th prompt, then results are all-gathered.</summary>
    DataParallel,
    /// <summary>Rank 0 generates everything and broadcasts the result.</summary>
    MainRank,
}

/// <summary>Which engine <see cref="SamplerExtensions.CreateSampler"/> builds.</summary>
public enum SamplingBackend
{
    /// <summary>
    /// <see cref="Torch"/> when the model's parameters are on a CUDA device; on the CPU, <see cref="Torch"/> for
    /// <see cref="EngineOptions.MaxSequences"/> of at least <see cref="SamplerExtensions.CpuTorchMinSequences"/> and
    /// <see cref="LlamaCpp"/> below (see <see cref="SamplerExtensions.ResolveBackend"/>).
    /// </summary>
    Auto,
    /// <summary><see cref="LlamaSamplingEngine"/>: llama.cpp on the CPU, weights copied from the trainer's device.</summary>
    LlamaCpp,
    /// <summary><see cref="TorchSamplingEngine"/>: TorchSharp on the model's own device (CUDA or CPU).</summary>
    Torch,
}

/// <summary>Settings of a sampling engine (<see cref="LlamaSamplingEngine"/> or <see cref="TorchSamplingEngine"/>).</summary>
public sealed record EngineOptions
{
    /// <summary>
    /// Which engine to build; <see cref="SamplingBackend.Auto"/> (the default) picks by the model's device and, on the
    /// CPU, by <see cref="MaxSequences"/>, once, when the sampler is created.
    /// </summary>
    public SamplingBackend Backend { get; init; } = SamplingBackend.Auto;

    /// <summary>
    /// Weight matrices' element type in the engine; null (the default): f16 for the llama.cpp engine, bf16 for the
    /// torch engine on CUDA and f32 for the torch engine on the CPU, where half-precision matmuls have no fast path
    /// (see <see cref="SamplerExtensions.ResolveWeightType"/>; the engine's <see cref="IColocatedSampler.WeightType"/>
    /// is the type it uses).
    /// </summary>
    public EngineWeightType? WeightType { get; init; }

    /// <summary>Tokens per sequence (prompt plus generated); null: the model's max positions, at most 2048.</summary>
    public int? ContextLength { get; init; }

    /// <summary>
    /// Sequences decoded together (sequence slots of the KV cache); finished ones are refilled from the queue. On the
    /// CPU it also decides which engine <see cref="SamplingBackend.Auto"/> builds: size it for the batches you generate.
    /// </summary>
    public int MaxSequences { get; init; } = 32;

    /// <summary>Most tokens per llama_decode call (prompt chunks plus one token per generating sequence).</summary>
    public int BatchTokens { get; init; } = 512;

    /// <summary>
    /// llama.cpp threads; null: half the cores divided by the ranks on the machine (at least 1), so the engine never
    /// takes every core the trainer's torch threads use.
    /// </summary>
    public int? Threads { get; init; }

    /// <summary>When the engine's logits are compared with the trainer model's.</summary>
    public ParityCheckMode ParityCheck { get; init; } = ParityCheckMode.FirstSync;

    /// <summary>Largest accepted max|logit diff| / max|logit| of the parity gate; null: 1e-3 for f32, 5e-2 for f16/bf16 (the engine's resolved weight type).</summary>
    public float? ParityTolerance { get; init; }

    /// <summary>How ranks split a distributed generate.</summary>
    public DistributedGenerateMode Mode { get; init; } = DistributedGenerateMode.DataParallel;

    /// <summary>Frees the KV cache after each generate and takes it back on the next one (saves memory between calls).</summary>
    public bool ReleaseCacheAfterGenerate { get; init; }

    /// <summary>llama.cpp flash attention; null: llama.cpp decides, except f32 engines keep exact attention (off).</summary>
    public bool? FlashAttention { get; init; }

    /// <summary>Prepends the tokenizer's BOS token to every prompt.</summary>
    public bool AddBos { get; init; } = true;

    /// <summary>
    /// Torch engine: decode steps run on the device between two reads of the sampled tokens by the host. Finished
    /// sequences are noticed (and their slots refilled) at these reads, so a larger value issues work with fewer
    /// synchronisations but decodes a few wasted tokens after an end of sequence.
    /// </summary>
    public int DecodeChunk { get; init; } = 32;

    /// <summary>Torch engine: most prompt tokens (padded) in one batched prefill forward.</summary>
    public int PrefillTokens { get; init; } = 8192;

    /// <summary>
    /// Torch engine: candidates kept for top-p/min-p when <see cref="SamplingParams.TopK"/> is 0 (the most likely
    /// tokens, found without a full sort). Top-p is exact when its nucleus has at most this many tokens and is cut to
    /// them otherwise; at or above the vocabulary size it is always exact.
    /// </summary>
    public int TopPCandidates { get; init; } = 1024;

    /// <summary>
    /// Torch engine with a LoRA adapter: true folds the adapter into the engine's copy of the base at every sync
    /// (<c>W + scale·B A</c>, one batched matmul per projection group; the sync copies the base in again, about a full
    /// swap, and decoding runs at the base model's speed); false applies it in decoding (<c>W x + scale·B (A x)</c>: a
    /// sync moves only the adapter's bytes, decoding does two more matmuls per projection group). null (the default):
    /// merged on CUDA, where a sync takes milliseconds and the extra matmuls made decoding 22-36% slower
    /// (bench/results/sampling-cuda.json), unmerged on the CPU, where a swap costs tens of milliseconds and the extra
    /// matmuls a few percent.
    /// </summary>
    public bool? MergeLoraOnSync { get; init; }
}
