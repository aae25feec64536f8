using System.Runtime.CompilerServices;
using TorchSharp;
using VectorLm.Distributed;
using VectorLm.Models;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>The engine's logits differ from the trainer model's by more than the parity tolerance.</summary>
public sealed class WeightParityException(string message) : InvalidOperationException(message);

/// <summary>Result of <see cref="LlamaSamplingEngine.CheckParity"/>.</summary>
/// <param name="MaxAbsDiff">Largest |engine logit - trainer logit| over the probe batch.</param>
/// <param name="LogitScale">Largest |trainer logit| over the probe batch.</param>
/// <param name="Tolerance">Largest accepted MaxAbsDiff / LogitScale.</param>
public sealed record ParityReport(float MaxAbsDiff, float LogitScale, float Tolerance)
{
    /// <summary>MaxAbsDiff relative to the logit scale.</summary>
    public float Relative => MaxAbsDiff / Math.Max(LogitScale, 1e-6f);
}

/// <summary>Where an engine reads a model's LoRA adapter (see <see cref="LlamaModel.AdapterWeights"/>).</summary>
/// <param name="Weights">The adapted projections now; empty when the model has no adapter.</param>
/// <param name="BaseRevision">Changes when the base weights change outside optimizer steps (load, merge).</param>
internal sealed record LoraSource(Func<IReadOnlyList<LoraWeights>> Weights, Func<long> BaseRevision);

/// <summary>
/// llama.cpp (through LLamaSharp's native libraries) sampling from the model being trained. Built in memory from the
/// trainer's parameters; after an optimizer step it is marked stale and the next <c>Generate</c> or
/// <see cref="SyncWeights"/> overwrites its weights in place, clears the KV cache and increments
/// <see cref="WeightVersion"/>. Thread-safe: calls are serialised.
/// </summary>
public sealed unsafe class LlamaSamplingEngine : IColocatedSampler
{
    readonly object _gate = new();
    readonly TrainerContext _trainerContext;
    readonly LlamaArchitecture _arch;
    readonly Func<IReadOnlyDictionary<string, Tensor>> _parameters;
    readonly Func<Tensor, Tensor>? _referenceForward;
    readonly ITokenCodec _codec;
    readonly EngineModel _model;
    readonly IDisposable _subscription;
    readonly TokenSampler _sampler;
    readonly LoraSource? _lora;
    EngineLoraAdapter? _adapter;
    float _adapterScale;
    long _syncedBaseRevision;
    LlamaContextHandle? _context;
    int _stale;
    long _version;
    bool _disposed;

    LlamaSamplingEngine(TrainerContext context, LlamaArchitecture arch, Func<IReadOnlyDictionary<string, Tensor>> parameters,
        ITokenCodec codec, Func<Tensor, Tensor>? referenceForward, EngineOptions options, LoraSource? lora)
    {
        _trainerContext = context;
        _arch = arch;
        _parameters = parameters;
        _codec = codec;
        _referenceForward = referenceForward;
        Options = options;
        ContextLength = options.ContextLength ?? Math.Min(arch.MaxPositions, 2048);
        Threads = options.Threads ?? DefaultThreads(Environment.ProcessorCount, context.LocalWorldSize);
        _sampler = new TokenSampler(arch.VocabSize);
        _model = EngineModel.Build(arch, parameters(), codec, options.WeightType);
        _lora = lora;
        try
        {
            if (lora is not null)
            {
                _syncedBaseRevision = lora.BaseRevision();
                var weights = lora.Weights();
                if (weights.Count > 0) LastSyncBytes += ApplyAdapter(weights);
            }
        }
        catch
        {
            _model.Dispose();
            throw;
        }
        _subscription = context.OnWeightsChanged(MarkStale);
    }

    /// <summary>What <see cref="EngineOptions.Threads"/> defaults to: half the cores divided by the ranks on the node, at least 1.</summary>
    internal static int DefaultThreads(int cores, int ranksOnNode) => DistributedEnvironment.CoresPerRank(cores / 2, ranksOnNode);

    /// <summary>
    /// Builds an engine from a Llama model's parameters (Hugging Face names) and the trainer's tokenizer, and
    /// subscribes it to <paramref name="context"/>'s weight changes. With <paramref name="referenceForward"/>
    /// (token ids [batch, seq] to logits [batch, seq, vocab]) the parity gate runs as <see cref="EngineOptions.ParityCheck"/> says.
    /// </summary>
    public static LlamaSamplingEngine Create(TrainerContext context, LlamaArchitecture architecture,
        Func<IReadOnlyDictionary<string, Tensor>> parameters, ITokenCodec tokenizer, Func<Tensor, Tensor>? referenceForward = null,
        EngineOptions? options = null) =>
        Create(context, architecture, parameters, tokenizer, referenceForward, options, lora: null);

    /// <summary>As the public <c>Create</c>, plus a model's LoRA adapter, applied by llama.cpp on top of the base.</summary>
    internal static LlamaSamplingEngine Create(TrainerContext context, LlamaArchitecture architecture,
        Func<IReadOnlyDictionary<string, Tensor>> parameters, ITokenCodec tokenizer, Func<Tensor, Tensor>? referenceForward,
        EngineOptions? options, LoraSource? lora)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new EngineOptions();
        Validate(options, architecture);
        NativeLog.Install();
        var engine = new LlamaSamplingEngine(context, architecture, parameters, tokenizer, referenceForward, options, lora);
        try
        {
            if (options.ParityCheck != ParityCheckMode.Never && referenceForward is not null) engine.CheckParity();
        }
        catch
        {
            engine.Dispose();
            throw;
        }
        return engine;
    }

    /// <summary>The settings it was built with.</summary>
    public EngineOptions Options { get; }

    /// <summary>Tokens per sequence (prompt plus generated).</summary>
    public int ContextLength { get; }

    /// <summary>llama.cpp threads used for decoding.</summary>
    public int Threads { get; }

    /// <inheritdoc />
    public long WeightVersion => Interlocked.Read(ref _version);

    /// <inheritdoc />
    public bool IsStale => Volatile.Read(ref _stale) != 0;

    /// <summary>True while the KV cache (llama context) is allocated.</summary>
    public bool HoldsCache { get { lock (_gate) return _context is not null; } }

    /// <summary>Bytes the engine's weights occupy (what a swap copies).</summary>
    public long WeightBytes => _model.SourcedBytes;

    /// <summary>Bytes of the LoRA adapter loaded into the engine (0 without one).</summary>
    public long AdapterBytes { get { lock (_gate) return _adapter?.Bytes ?? 0; } }

    /// <summary>Bytes the last sync wrote into the engine (with a frozen base and an adapter: the adapter's).</summary>
    internal long LastSyncBytes { get; private set; }

    internal EngineModel Model => _model;

    /// <inheritdoc />
    public void MarkStale() => Volatile.Write(ref _stale, 1);

    /// <inheritdoc />
    [Collective]
    public void SyncWeights([CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            SyncLocked();
        }
    }

    /// <summary>Copies the trainer's weights in now, stale or not (what a swap costs; used by benchmarks).</summary>
    public void ForceSync()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            MarkStale();
            SyncLocked();
        }
    }

    void SyncLocked()
    {
        // Besides optimizer steps (stale), an adapter added, loaded or merged, or base weights loaded, need a sync.
        var adapterWeights = _lora?.Weights();
        long revision = _lora?.BaseRevision() ?? 0;
        bool adapterChanged = _lora is not null && (revision != _syncedBaseRevision
            || (adapterWeights!.Count > 0) != (_adapter is not null)
            || (_adapter is not null && !_adapter.Fits(adapterWeights!)));
        if (Interlocked.Exchange(ref _stale, 0) == 0 && !adapterChanged) return;
        if (adapterWeights is { Count: > 0 })
        {
            // The base is frozen under an adapter: only trainable parameters (none, usually) and the adapter move,
            // unless the base itself changed since the last sync.
            LastSyncBytes = _model.CopyWeights(_parameters(), onlyTrainable: revision == _syncedBaseRevision);
            LastSyncBytes += ApplyAdapter(adapterWeights);
        }
        else
        {
            DropAdapter();
            LastSyncBytes = _model.CopyWeights(_parameters());
        }
        _syncedBaseRevision = revision;
        // Cached keys/values were computed with the old weights; live sequences go with them.
        if (_context is not null) LlamaNative.MemoryClear(_context, data: true);
        Interlocked.Increment(ref _version);
        if (Options.ParityCheck == ParityCheckMode.EverySync && _referenceForward is not null) CheckParityLocked();
    }

    // Loads the adapter on first use (or when its modules or rank change), then writes its values in place.
    long ApplyAdapter(IReadOnlyList<LoraWeights> weights)
    {
        long bytes;
        if (_adapter is not null && _adapter.Fits(weights)) bytes = _adapter.CopyWeights(weights);
        else
        {
            DropAdapter();
            _adapter = EngineLoraAdapter.Load(_model, weights);
            bytes = _adapter.Bytes;
        }
        float scale = (float)weights[0].Scale;
        if (weights.Any(w => (float)w.Scale != scale))
            throw new InvalidOperationException("The adapter's modules have different scales; the llama.cpp engine applies one scale per adapter.");
        _adapterScale = scale;
        if (_context is not null) SetAdapterOn(_context);
        return bytes;
    }

    void SetAdapterOn(LlamaContextHandle context)
    {
        int rc = LlamaNative.SetAdaptersLora(context, _adapter?.Handle ?? IntPtr.Zero, _adapterScale);
        if (rc != 0) throw new InvalidOperationException($"llama_set_adapters_lora returned {rc}.");
    }

    void DropAdapter()
    {
        if (_adapter is null) return;
        if (_context is not null) LlamaNative.SetAdaptersLora(_context, IntPtr.Zero, 0);
        _adapter.Dispose();
        _adapter = null;
    }

    /// <summary>Frees the KV cache; the next generate allocates it again.</summary>
    public void ReleaseCache()
    {
        lock (_gate)
        {
            _context?.Dispose();
            _context = null;
        }
    }

    /// <summary>
    /// Compares the engine's logits with the trainer model's on a fixed probe batch and throws
    /// <see cref="WeightParityException"/> when max|diff| / max|logit| exceeds the tolerance.
    /// </summary>
    public ParityReport CheckParity()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            return CheckParityLocked();
        }
    }

    ParityReport CheckParityLocked()
    {
        if (_referenceForward is null) throw new InvalidOperationException("The engine was created without a reference forward; parity cannot be checked.");
        float tolerance = Options.ParityTolerance ?? (Options.WeightType == EngineWeightType.F32 ? 1e-3f : 5e-2f);
        const int probeSequences = 2;
        int probeLength = Math.Min(16, ContextLength);
        var rng = new SampleRng(0x9A11, 0, 0);
        var ids = new long[probeSequences * probeLength];
        for (int i = 0; i < ids.Length; i++) ids[i] = (long)(rng.Next() % (ulong)_arch.VocabSize);

        float[] reference;
        var device = _parameters().Values.First().device;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var input = torch.tensor(ids, [probeSequences, probeLength], ScalarType.Int64, device);
            reference = _referenceForward(input).to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        }
        if (reference.Length != ids.Length * (long)_arch.VocabSize)
            throw new InvalidOperationException($"The reference forward returned {reference.Length} logits; expected [{probeSequences}, {probeLength}, {_arch.VocabSize}].");

        var context = EnsureContext();
        float maxDiff = 0, scale = 0;
        int worstSeq = 0, worstPos = 0;
        using var batch = new BatchBuffer(Math.Max(probeLength, Options.BatchTokens));
        for (int s = 0; s < probeSequences; s++)
        {
            LlamaNative.MemoryClear(context, data: true);
            batch.Clear();
            for (int p = 0; p < probeLength; p++) batch.Add((int)ids[s * probeLength + p], p, 0, logits: true);
            Decode(context, batch);
            for (int p = 0; p < probeLength; p++)
            {
                var engine = new ReadOnlySpan<float>(LlamaNative.GetLogitsIth(context, p), _arch.VocabSize);
                var expected = reference.AsSpan((s * probeLength + p) * _arch.VocabSize, _arch.VocabSize);
                for (int v = 0; v < engine.Length; v++)
                {
                    float d = Math.Abs(engine[v] - expected[v]);
                    if (!(d <= maxDiff)) { maxDiff = float.IsNaN(d) ? float.PositiveInfinity : d; worstSeq = s; worstPos = p; }
                    scale = Math.Max(scale, Math.Abs(expected[v]));
                }
            }
        }
        LlamaNative.MemoryClear(context, data: true);
        var report = new ParityReport(maxDiff, scale, tolerance);
        if (!(report.Relative <= tolerance))
            throw new WeightParityException(
                $"Engine logits differ from the trainer model's: max |diff| {maxDiff:G4} (probe sequence {worstSeq}, position {worstPos}) " +
                $"is {report.Relative:G4} of the logit scale {scale:G4}, above the tolerance {tolerance:G4} for {Options.WeightType} weights. " +
                "The weight conversion (names, rotary permutation, dtype) or the model config is wrong.");
        return report;
    }

    /// <summary>Engine logits [tokens.Length x vocab] of one sequence (weights synced first); the KV cache is left empty.</summary>
    internal float[] EvaluateLogits(int[] tokens)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            SyncLocked();
            var context = EnsureContext();
            LlamaNative.MemoryClear(context, data: true);
            using var batch = new BatchBuffer(Math.Max(tokens.Length, Options.BatchTokens));
            for (int p = 0; p < tokens.Length; p++) batch.Add(tokens[p], p, 0, logits: true);
            Decode(context, batch);
            var result = new float[tokens.Length * _arch.VocabSize];
            for (int p = 0; p < tokens.Length; p++)
                new ReadOnlySpan<float>(LlamaNative.GetLogitsIth(context, p), _arch.VocabSize).CopyTo(result.AsSpan(p * _arch.VocabSize));
            LlamaNative.MemoryClear(context, data: true);
            return result;
        }
    }

    /// <summary>Largest KV position held by sequence slot <paramref name="sequence"/> (-1 when empty or no cache).</summary>
    internal int CachedPositionMax(int sequence)
    {
        lock (_gate) return _context is null ? -1 : LlamaNative.MemorySeqPositionMax(_context, sequence);
    }

    /// <summary>Runs <paramref name="action"/> under the engine's lock (tests: to observe serialisation).</summary>
    internal void UnderLock(Action action)
    {
        lock (_gate) action();
    }

    /// <summary>Feeds <paramref name="tokens"/> into sequence slot 0 and leaves them cached (tests: to see the KV clear).</summary>
    internal void Prefill(int[] tokens)
    {
        lock (_gate)
        {
            var context = EnsureContext();
            using var batch = new BatchBuffer(Math.Max(tokens.Length, Options.BatchTokens));
            for (int p = 0; p < tokens.Length; p++) batch.Add(tokens[p], p, 0, logits: p == tokens.Length - 1);
            Decode(context, batch);
        }
    }

    /// <inheritdoc />
    [Collective]
    [OverloadResolutionPriority(1)]   // Generate([]) means no prompts, not no token lists
    public IReadOnlyList<Completion> Generate(IReadOnlyList<string> prompts, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var p = parameters ?? new SamplingParams();
        GenerateContract.Validate(p);
        lock (_gate)
        {
            ThrowIfDisposed();
            return GenerateContract.Run(_trainerContext, Options.Mode, GenerateContract.Fingerprint(prompts, p), prompts.Count,
                () => GenerateContract.Tokenize(prompts, _codec, Options.AddBos, ContextLength), SyncLocked,
                (share, tokenized) => GenerateLocal(share, tokenized, p), AfterGenerate, member, file, line);
        }
    }

    /// <inheritdoc />
    [Collective]
    public IReadOnlyList<Completion> Generate(IReadOnlyList<int[]> promptTokens, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        var p = parameters ?? new SamplingParams();
        GenerateContract.Validate(p);
        lock (_gate)
        {
            ThrowIfDisposed();
            return GenerateContract.Run(_trainerContext, Options.Mode, GenerateContract.Fingerprint(promptTokens, p), promptTokens.Count,
                () => GenerateContract.CheckTokens(promptTokens, ContextLength, _arch.VocabSize), SyncLocked,
                (share, tokenized) => GenerateLocal(share, tokenized, p), AfterGenerate, member, file, line);
        }
    }

    void AfterGenerate()
    {
        if (!Options.ReleaseCacheAfterGenerate) return;
        _context?.Dispose();
        _context = null;
    }

    /// <summary>Tokens the engine feeds for <paramref name="prompt"/>: the trainer tokenizer's ids, after BOS where the tokenizer adds one.</summary>
    public int[] TokenizePrompt(string prompt)
    {
        return GenerateContract.PromptIds(_codec, Options.AddBos, prompt);
    }

    /// <summary>llama.cpp's own tokenization of <paramref name="text"/> with the engine's vocabulary (no BOS).</summary>
    internal int[] TokenizeWithLlama(string text) => LlamaNative.Tokenize(LlamaNative.ModelGetVocab(_model.Handle), text, addSpecial: false, parseSpecial: false);

    sealed class Sequence(int promptIndex, int sampleIndex, int[] prompt, SampleRng rng)
    {
        public readonly int PromptIndex = promptIndex, SampleIndex = sampleIndex;
        public readonly int[] Prompt = prompt;
        public SampleRng Rng = rng;
        public int Fed;                         // tokens in the KV cache
        public readonly List<int> Generated = new();
        public readonly List<float> LogProbs = new();
        public int BatchIndex = -1;             // row of this step's logits, -1 when none
        public int PendingToken = -1;           // sampled, not yet fed
    }

    List<Completion> GenerateLocal(IReadOnlyList<int> promptIndices, List<int[]> tokenized, SamplingParams p)
    {
        var samples = promptIndices.ToDictionary(i => i, _ => new Sample[p.N]);
        var queue = new Queue<Sequence>();
        foreach (int i in promptIndices)
            for (int s = 0; s < p.N; s++)
                queue.Enqueue(new Sequence(i, s, tokenized[i], new SampleRng(p.Seed, i, s)));
        if (queue.Count == 0) return new List<Completion>();

        var context = EnsureContext();
        LlamaNative.MemoryClear(context, data: true);
        var slots = new Sequence?[Options.MaxSequences];
        using var batch = new BatchBuffer(Options.BatchTokens);
        long version = WeightVersion;
        while (true)
        {
            for (int s = 0; s < slots.Length && queue.Count > 0; s++)
                if (slots[s] is null)
                {
                    slots[s] = queue.Dequeue();
                    LlamaNative.MemorySeqRemove(context, s, -1, -1);
                }
            if (slots.All(s => s is null)) break;

            batch.Clear();
            // One token per generating sequence first, then prompt chunks in the remaining room.
            for (int s = 0; s < slots.Length; s++)
                if (slots[s] is { PendingToken: >= 0 } seq)
                {
                    seq.BatchIndex = batch.Add(seq.PendingToken, seq.Fed++, s, logits: true);
                    seq.PendingToken = -1;
                }
            for (int s = 0; s < slots.Length && batch.Room > 0; s++)
                if (slots[s] is { } seq && seq.Fed < seq.Prompt.Length && seq.BatchIndex < 0)
                {
                    int take = Math.Min(batch.Room, seq.Prompt.Length - seq.Fed);
                    for (int k = 0; k < take; k++)
                    {
                        bool last = seq.Fed + 1 == seq.Prompt.Length;
                        int index = batch.Add(seq.Prompt[seq.Fed], seq.Fed, s, logits: last);
                        seq.Fed++;
                        if (last) seq.BatchIndex = index;
                    }
                }
            Decode(context, batch);

            for (int s = 0; s < slots.Length; s++)
            {
                if (slots[s] is not { BatchIndex: >= 0 } seq) continue;
                var logits = new ReadOnlySpan<float>(LlamaNative.GetLogitsIth(context, seq.BatchIndex), _arch.VocabSize);
                seq.BatchIndex = -1;
                int token = _sampler.Sample(logits, p, ref seq.Rng, out float logProb);
                seq.Generated.Add(token);
                seq.LogProbs.Add(logProb);
                var finished = GenerateContract.Finish(_codec, seq.Generated, seq.Fed, ContextLength, p, out string? text);
                if (finished is { } reason)
                {
                    samples[seq.PromptIndex][seq.SampleIndex] = new Sample(text ?? _codec.Decode(seq.Generated), seq.Generated.ToArray(),
                        seq.LogProbs.ToArray(), reason, version);
                    slots[s] = null;
                }
                else seq.PendingToken = token;
            }
        }
        return promptIndices.Select(i => new Completion(i, samples[i])).ToList();
    }

    LlamaContextHandle EnsureContext()
    {
        if (_context is not null) return _context;
        var cp = LlamaNative.ContextDefaultParams();
        // Split evenly over sequences (kv_unified off); llama.cpp pads each sequence's share to a multiple of 256.
        int perSequence = (ContextLength + 255) / 256 * 256;
        cp.ContextSize = (uint)(perSequence * Options.MaxSequences);
        cp.BatchSize = (uint)Options.BatchTokens;
        cp.MicroBatchSize = (uint)Options.BatchTokens;
        cp.MaxSequences = (uint)Options.MaxSequences;
        cp.Threads = Threads;
        cp.BatchThreads = Threads;
        cp.KvUnified = 0;   // one KV stream per sequence: unified halves throughput at many sequences
        cp.NoPerf = 1;
        cp.Embeddings = 0;
        // An f16 KV cache alone costs about 1e-3 of the logit scale: f32 engines keep f32 keys/values.
        // Flash attention computes in f16 on the CPU (about 1e-3 of the logit scale): off for f32 unless asked for.
        if (Options.WeightType == EngineWeightType.F32) { cp.TypeK = cp.TypeV = GgmlType.F32; cp.FlashAttentionType = 0; }
        if (Options.FlashAttention is { } flash) cp.FlashAttentionType = flash ? 1 : 0;
        var raw = LlamaNative.InitFromModel(_model.Handle, cp);
        if (raw == IntPtr.Zero)
            throw new InvalidOperationException($"llama_init_from_model failed (context {cp.ContextSize} tokens, {cp.MaxSequences} sequences); see llama.cpp's log on stderr.");
        _context = new LlamaContextHandle(raw, _model.Handle);
        if (_adapter is not null) SetAdapterOn(_context);
        return _context;
    }

    static void Decode(LlamaContextHandle context, BatchBuffer batch)
    {
        int rc = LlamaNative.Decode(context, batch.Native);
        if (rc != 0) throw new InvalidOperationException($"llama_decode returned {rc} for a batch of {batch.Count} tokens.");
    }

    static void Validate(EngineOptions o, LlamaArchitecture arch)
    {
        if (o.MaxSequences < 1) throw new ArgumentException($"MaxSequences must be at least 1, got {o.MaxSequences}.", nameof(o));
        if (o.BatchTokens < o.MaxSequences) throw new ArgumentException($"BatchTokens ({o.BatchTokens}) must be at least MaxSequences ({o.MaxSequences}).", nameof(o));
        if (o.ContextLength is < 2) throw new ArgumentException($"ContextLength must be at least 2, got {o.ContextLength}.", nameof(o));
        if (o.ContextLength > arch.MaxPositions) throw new ArgumentException($"ContextLength {o.ContextLength} exceeds the model's max positions {arch.MaxPositions}.", nameof(o));
        if (o.Threads is < 1) throw new ArgumentException($"Threads must be at least 1, got {o.Threads}.", nameof(o));
        if (o.ParityTolerance is <= 0) throw new ArgumentException($"ParityTolerance must be positive, got {o.ParityTolerance}.", nameof(o));
    }

    void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _subscription.Dispose();
            _context?.Dispose();
            _context = null;
            _adapter?.Dispose();
            _adapter = null;
            _model.Dispose();
        }
    }

    /// <summary>A llama_batch of one sequence id per token, reused across decode steps.</summary>
    internal sealed class BatchBuffer : IDisposable
    {
        LlamaBatch _batch;
        readonly int _capacity;

        public BatchBuffer(int capacity)
        {
            _capacity = capacity;
            _batch = LlamaNative.BatchInit(capacity, 0, 1);
        }

        public LlamaBatch Native => _batch;
        public int Count => _batch.TokenCount;
        public int Room => _capacity - _batch.TokenCount;

        public void Clear() => _batch.TokenCount = 0;

        public int Add(int token, int position, int sequence, bool logits)
        {
            int i = _batch.TokenCount;
            if (i >= _capacity) throw new InvalidOperationException($"Batch of {_capacity} tokens is full.");
            _batch.Tokens[i] = token;
            _batch.Positions[i] = position;
            _batch.SeqIdCounts[i] = 1;
            _batch.SeqIds[i][0] = sequence;
            _batch.Logits[i] = logits ? (sbyte)1 : (sbyte)0;
            _batch.TokenCount = i + 1;
            return i;
        }

        public void Dispose()
        {
            if (_batch.Tokens == null) return;
            _batch.TokenCount = _capacity;
            LlamaNative.BatchFree(_batch);
            _batch = default;
        }
    }
}
