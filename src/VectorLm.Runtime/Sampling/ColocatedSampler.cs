using System.Runtime.CompilerServices;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>The engine's logits differ from the trainer model's by more than the parity tolerance.</summary>
public sealed class WeightParityException(string message) : InvalidOperationException(message);

/// <summary>Result of <see cref="ColocatedSampler.CheckParity"/>.</summary>
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
/// The contract both SDK engines share (<see cref="LlamaSamplingEngine"/>, <see cref="TorchSamplingEngine"/>): the
/// collective <c>Generate</c> overloads, weight versions and staleness, lazy sync after optimizer steps (base weights
/// and a LoRA adapter, only the adapter when the base is frozen), the parity gate's probe and verdict, cache control,
/// serialisation and disposal. An engine implements its own decode loop, weight upload and adapter.
/// </summary>
public abstract class ColocatedSampler : IColocatedSampler
{
    readonly object _gate = new();
    readonly TrainerContext _trainerContext;
    readonly Func<IReadOnlyDictionary<string, Tensor>> _parameters;
    readonly LoraSource? _lora;
    IDisposable? _subscription;
    long _syncedBaseRevision;
    IReadOnlyDictionary<string, Tensor>? _baseAtSync;   // the base parameters the engine last copied from
    bool _adapterAtSync;
    int _stale;
    long _version;
    bool _disposed;

    private protected ColocatedSampler(TrainerContext context, LlamaArchitecture architecture, Func<IReadOnlyDictionary<string, Tensor>> parameters,
        ITokenCodec codec, Func<Tensor, Tensor>? referenceForward, EngineOptions options, LoraSource? lora)
    {
        _trainerContext = context;
        Architecture = architecture;
        _parameters = parameters;
        Codec = codec;
        ReferenceForward = referenceForward;
        Options = options;
        _lora = lora;
        ContextLength = options.ContextLength ?? Math.Min(architecture.MaxPositions, 2048);
    }

    /// <summary>
    /// Called by <see cref="Build"/> once the engine's weights are in: applies the model's adapter, subscribes to weight
    /// changes and runs the parity gate as <see cref="EngineOptions.ParityCheck"/> says; disposes the engine on failure.
    /// </summary>
    void Start()
    {
        try
        {
            _baseAtSync = _parameters();   // what the engine's constructor copied its weights from
            if (_lora is not null)
            {
                _syncedBaseRevision = _lora.BaseRevision();
                var weights = _lora.Weights();
                if (weights.Count > 0) LastSyncBytes += LoadAdapter(weights);
                _adapterAtSync = weights.Count > 0;
            }
            _subscription = _trainerContext.OnWeightsChanged(MarkStale);
            if (Options.ParityCheck != ParityCheckMode.Never && ReferenceForward is not null) CheckParity();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The model's shape.</summary>
    private protected LlamaArchitecture Architecture { get; }

    /// <summary>The trainer's tokenizer.</summary>
    private protected ITokenCodec Codec { get; }

    /// <summary>The trainer model's base parameters now (Hugging Face names).</summary>
    private protected IReadOnlyDictionary<string, Tensor> Parameters() => _parameters();

    /// <summary>The trainer model's forward (token ids [batch, seq] to logits), for the parity gate; null without one.</summary>
    private protected Func<Tensor, Tensor>? ReferenceForward { get; }

    /// <inheritdoc />
    public EngineOptions Options { get; }

    /// <inheritdoc />
    public int ContextLength { get; }

    /// <inheritdoc />
    public long WeightVersion => Interlocked.Read(ref _version);

    /// <inheritdoc />
    public bool IsStale => Volatile.Read(ref _stale) != 0;

    /// <inheritdoc />
    public abstract long WeightBytes { get; }

    /// <inheritdoc />
    public abstract EngineWeightType WeightType { get; }

    /// <inheritdoc />
    public bool HoldsCache { get { lock (_gate) return HoldsCacheLocked; } }

    /// <summary>Bytes of the LoRA adapter in the engine (0 without one).</summary>
    public long AdapterBytes { get { lock (_gate) return AdapterBytesLocked; } }

    /// <summary>Bytes the last sync wrote into the engine (with a frozen base and an adapter: the adapter's).</summary>
    internal long LastSyncBytes { get; private set; }

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

    /// <inheritdoc />
    public void ForceSync()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            MarkStale();
            SyncLocked();
        }
    }

    /// <summary>Copies the trainer's weights in when stale, or when the adapter or the base changed outside a step.</summary>
    private protected void SyncLocked()
    {
        // Besides optimizer steps (stale), an adapter added, loaded or merged, or base weights loaded, need a sync.
        var adapterWeights = _lora?.Weights();
        long revision = _lora?.BaseRevision() ?? 0;
        bool hasAdapter = adapterWeights is { Count: > 0 };
        bool fits = hasAdapter && AdapterFits(adapterWeights!);
        bool adapterChanged = _lora is not null && (revision != _syncedBaseRevision || hasAdapter != _adapterAtSync || (hasAdapter && !fits));
        bool stale = Interlocked.Exchange(ref _stale, 0) != 0;
        if (!stale && !adapterChanged) return;
        BeginSync();
        if (hasAdapter)
        {
            // The base is frozen under an adapter: only trainable parameters (none, usually) and the adapter move,
            // unless the base was loaded or merged since the last sync, or had no adapter then and took steps since.
            bool frozen = !AdapterNeedsFreshBase && revision == _syncedBaseRevision && (_adapterAtSync || !stale) && _baseAtSync is not null;
            // Frozen and nothing of the base trainable (checked on the tensors of the last sync, whose values a frozen
            // base keeps): no need to walk the model's parameters, which costs more host time than the adapter's copy.
            LastSyncBytes = frozen && !_baseAtSync!.Values.Any(t => t.requires_grad) ? 0 : CopyBase(onlyTrainable: frozen);
            LastSyncBytes += fits ? CopyAdapter(adapterWeights!) : LoadAdapter(adapterWeights!);
        }
        else
        {
            DropAdapter();
            LastSyncBytes = CopyBase(onlyTrainable: false);
        }
        _syncedBaseRevision = revision;
        _adapterAtSync = hasAdapter;
        OnWeightsReplaced();
        Interlocked.Increment(ref _version);
        if (Options.ParityCheck == ParityCheckMode.EverySync && ReferenceForward is not null) CheckParityLocked();
    }

    long CopyBase(bool onlyTrainable)
    {
        var parameters = _parameters();
        long bytes = CopyBaseWeights(parameters, onlyTrainable);
        _baseAtSync = parameters;
        return bytes;
    }

    /// <summary>Copies the base weights into the engine (only blocks with trainable sources when asked); returns the bytes written.</summary>
    private protected abstract long CopyBaseWeights(IReadOnlyDictionary<string, Tensor> parameters, bool onlyTrainable);

    /// <summary>True when the engine holds an adapter with the modules and ranks of <paramref name="weights"/>.</summary>
    private protected abstract bool AdapterFits(IReadOnlyList<LoraWeights> weights);

    /// <summary>Builds an adapter for <paramref name="weights"/> (replacing any other) with their values; returns its bytes.</summary>
    private protected abstract long LoadAdapter(IReadOnlyList<LoraWeights> weights);

    /// <summary>Writes <paramref name="weights"/> into the adapter the engine holds (it fits); returns the bytes written.</summary>
    private protected abstract long CopyAdapter(IReadOnlyList<LoraWeights> weights);

    /// <summary>Removes the engine's adapter, if any.</summary>
    private protected abstract void DropAdapter();

    /// <summary>True when the engine folds the adapter into its copy of the base, which must then be copied in fresh at every sync.</summary>
    private protected virtual bool AdapterNeedsFreshBase => false;

    /// <summary>Before a sync writes anything (counters of what it writes).</summary>
    private protected virtual void BeginSync() { }

    /// <summary>After a sync: what the engine must forget of the old weights (llama.cpp: its KV cache).</summary>
    private protected virtual void OnWeightsReplaced() { }

    private protected abstract bool HoldsCacheLocked { get; }

    private protected abstract long AdapterBytesLocked { get; }

    /// <inheritdoc />
    public void ReleaseCache()
    {
        lock (_gate) ReleaseCacheLocked();
    }

    /// <summary>Frees the KV cache (under the engine's lock).</summary>
    private protected abstract void ReleaseCacheLocked();

    /// <inheritdoc />
    public ParityReport CheckParity()
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            return CheckParityLocked();
        }
    }

    /// <summary>
    /// The parity gate: the engine's logits of a fixed probe batch against <see cref="ReferenceForward"/>'s, through
    /// <see cref="CompareWithReference"/>; throws <see cref="WeightParityException"/> above the tolerance.
    /// </summary>
    ParityReport CheckParityLocked()
    {
        if (ReferenceForward is null) throw new InvalidOperationException("The engine was created without a reference forward; parity cannot be checked.");
        float tolerance = Options.ParityTolerance ?? DefaultParityTolerance(WeightType);
        const int probeSequences = 2;
        int probeLength = Math.Min(16, ContextLength);
        var rng = new SampleRng(0x9A11, 0, 0);
        var ids = new long[probeSequences * probeLength];
        for (int i = 0; i < ids.Length; i++) ids[i] = (long)(rng.Next() % (ulong)Architecture.VocabSize);
        var (maxDiff, scale, where) = CompareWithReference(ids, probeSequences, probeLength);
        var report = new ParityReport(maxDiff, scale, tolerance);
        if (!(report.Relative <= tolerance))
            throw new WeightParityException(
                $"Engine logits differ from the trainer model's: max |diff| {maxDiff:G4}{where} is {report.Relative:G4} of the logit scale {scale:G4}, " +
                $"above the tolerance {tolerance:G4} for {WeightType} weights. The weight conversion (names, rotary permutation, dtype) or the model config is wrong.");
        return report;
    }

    /// <summary>What <see cref="EngineOptions.ParityTolerance"/> defaults to for an engine of <paramref name="weightType"/> weights.</summary>
    internal static float DefaultParityTolerance(EngineWeightType weightType) => weightType == EngineWeightType.F32 ? 1e-3f : 5e-2f;

    /// <summary>
    /// Max |engine logit - reference logit| (NaN counts as infinite), max |reference logit| and where the worst
    /// difference is (text for the message, may be empty), for probe <paramref name="ids"/> [sequences, length].
    /// </summary>
    private protected abstract (float MaxDiff, float Scale, string Where) CompareWithReference(long[] ids, int sequences, int length);

    /// <summary>Reference logits [sequences, length, vocab] of <paramref name="input"/>, shape checked (for <see cref="CompareWithReference"/>).</summary>
    private protected Tensor Reference(Tensor input)
    {
        var reference = ReferenceForward!(input).to(ScalarType.Float32);
        long[] expected = [input.shape[0], input.shape[1], Architecture.VocabSize];
        if (!reference.shape.SequenceEqual(expected))
            throw new InvalidOperationException($"The reference forward returned shape [{string.Join(", ", reference.shape)}]; expected [{string.Join(", ", expected)}].");
        return reference;
    }

    /// <summary>Engine logits [tokens.Length x vocab] of one sequence, weights synced first (tests, benchmarks); nothing is left cached.</summary>
    internal float[] EvaluateLogits(int[] tokens) => UnderLock(() =>
    {
        SyncLocked();
        return Logits(tokens);
    });

    /// <summary>The engine's logits of every position of <paramref name="tokens"/>, flattened (under the lock).</summary>
    private protected abstract float[] Logits(int[] tokens);

    /// <inheritdoc />
    [Collective]
    [OverloadResolutionPriority(1)]   // Generate([]) means no prompts, not no token lists
    public IReadOnlyList<Completion> Generate(IReadOnlyList<string> prompts, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return GenerateChecked(parameters, p => GenerateContract.Fingerprint(prompts, p), prompts.Count,
            () => GenerateContract.Tokenize(prompts, Codec, Options.AddBos, ContextLength), member, file, line);
    }

    /// <inheritdoc />
    [Collective]
    public IReadOnlyList<Completion> Generate(IReadOnlyList<int[]> promptTokens, SamplingParams? parameters = null,
        [CallerMemberName] string member = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        ArgumentNullException.ThrowIfNull(promptTokens);
        return GenerateChecked(parameters, p => GenerateContract.Fingerprint(promptTokens, p), promptTokens.Count,
            () => GenerateContract.CheckTokens(promptTokens, ContextLength, Architecture.VocabSize), member, file, line);
    }

    // Both overloads: parameters checked, then under the lock the collective contract runs with the overload's
    // fingerprint and its way of turning prompts into token ids.
    IReadOnlyList<Completion> GenerateChecked(SamplingParams? parameters, Func<SamplingParams, string> fingerprint, int count,
        Func<List<int[]>> prepare, string member, string file, int line)
    {
        var p = parameters ?? new SamplingParams();
        GenerateContract.Validate(p);
        lock (_gate)
        {
            ThrowIfDisposed();
            return GenerateContract.Run(_trainerContext, Options.Mode, fingerprint(p), count, prepare, SyncLocked,
                (share, tokenized) => GenerateLocal(share, tokenized, p), AfterGenerate, member, file, line);
        }
    }

    /// <summary>This rank's share of a generate: completions for <paramref name="promptIndices"/> of <paramref name="tokenized"/>.</summary>
    private protected abstract List<Completion> GenerateLocal(IReadOnlyList<int> promptIndices, List<int[]> tokenized, SamplingParams p);

    void AfterGenerate()
    {
        if (Options.ReleaseCacheAfterGenerate) ReleaseCacheLocked();
    }

    /// <inheritdoc />
    public int[] TokenizePrompt(string prompt) => GenerateContract.PromptIds(Codec, Options.AddBos, prompt);

    /// <summary>Runs <paramref name="action"/> under the engine's lock (tests: to observe serialisation; engines: internal entry points).</summary>
    internal T UnderLock<T>(Func<T> action)
    {
        lock (_gate)
        {
            ThrowIfDisposed();
            return action();
        }
    }

    /// <summary>Runs <paramref name="action"/> under the engine's lock (tests: to observe serialisation).</summary>
    internal void UnderLock(Action action)
    {
        lock (_gate) action();
    }

    /// <summary>
    /// What both engines' factories do: checks the arguments and the options (those both engines share, then the
    /// engine's own through <paramref name="validate"/>), builds the engine with <paramref name="construct"/> and starts it.
    /// </summary>
    private protected static TEngine Build<TEngine>(TrainerContext context, LlamaArchitecture architecture,
        Func<IReadOnlyDictionary<string, Tensor>> parameters, ITokenCodec tokenizer, EngineOptions? options,
        Action<EngineOptions> validate, Func<EngineOptions, TEngine> construct) where TEngine : ColocatedSampler
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new EngineOptions();
        ValidateCommon(options, architecture);
        validate(options);
        var engine = construct(options);
        engine.Start();
        return engine;
    }

    /// <summary>Checks the options both engines share; throws <see cref="ArgumentException"/> naming the field.</summary>
    static void ValidateCommon(EngineOptions o, LlamaArchitecture arch)
    {
        if (o.MaxSequences < 1) throw new ArgumentException($"MaxSequences must be at least 1, got {o.MaxSequences}.", nameof(o));
        if (o.ContextLength is < 2) throw new ArgumentException($"ContextLength must be at least 2, got {o.ContextLength}.", nameof(o));
        if (o.ContextLength > arch.MaxPositions) throw new ArgumentException($"ContextLength {o.ContextLength} exceeds the model's max positions {arch.MaxPositions}.", nameof(o));
        if (o.ParityTolerance is <= 0) throw new ArgumentException($"ParityTolerance must be positive, got {o.ParityTolerance}.", nameof(o));
    }

    private protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <inheritdoc />
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _subscription?.Dispose();
            DisposeEngine();
        }
        GC.SuppressFinalize(this);
    }

    /// <summary>Frees the engine's native and device memory (once, under the lock).</summary>
    private protected abstract void DisposeEngine();
}
