using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>
/// TorchSharp sampling on the trainer model's own device (CUDA or CPU), with the same contract as
/// <see cref="LlamaSamplingEngine"/>. It keeps a copy of the weights laid out for decoding (fused QKV and gate/up, in
/// <see cref="EngineOptions.WeightType"/>); after an optimizer step it is marked stale and the next Generate or
/// <see cref="SyncWeights"/> overwrites that copy with on-device copies and increments <see cref="WeightVersion"/>.
/// Thread-safe: calls are serialised.
/// </summary>
/// <remarks>
/// Decoding runs a fixed set of sequence slots over a preallocated KV cache written in place. Finished slots are
/// refilled from the queue with a batched prefill. The device runs <see cref="EngineOptions.DecodeChunk"/> steps between
/// two reads of the sampled tokens: positions, tokens and random streams stay on the device, and attention covers only
/// the longest live sequence, rounded up to a bucket.
/// </remarks>
public sealed class TorchSamplingEngine : IColocatedSampler
{
    const int SpanBucket = 64;

    readonly object _gate = new();
    readonly TrainerContext _trainerContext;
    readonly LlamaArchitecture _arch;
    readonly Func<IReadOnlyDictionary<string, Tensor>> _parameters;
    readonly Func<Tensor, Tensor>? _referenceForward;
    readonly ITokenCodec _codec;
    readonly TorchDecoder _decoder;
    readonly TorchTokenSampler _sampler;
    readonly IDisposable _subscription;
    int _stale;
    long _version;
    bool _disposed;

    TorchSamplingEngine(TrainerContext context, LlamaArchitecture arch, Func<IReadOnlyDictionary<string, Tensor>> parameters,
        ITokenCodec codec, Func<Tensor, Tensor>? referenceForward, EngineOptions options)
    {
        _trainerContext = context;
        _arch = arch;
        _parameters = parameters;
        _codec = codec;
        _referenceForward = referenceForward;
        Options = options;
        ContextLength = options.ContextLength ?? Math.Min(arch.MaxPositions, 2048);
        var source = parameters();
        if (source.Count == 0) throw new ArgumentException("The model has no parameters.", nameof(parameters));
        Device = source.Values.First().device;
        var dtype = options.WeightType switch
        {
            EngineWeightType.F32 => ScalarType.Float32,
            EngineWeightType.F16 => ScalarType.Float16,
            _ => ScalarType.BFloat16,
        };
        _decoder = new TorchDecoder(arch, source, Device, dtype, ContextLength, options.MaxSequences);
        try
        {
            _decoder.CopyWeights(source);
            _sampler = new TorchTokenSampler(arch.VocabSize, options.TopPCandidates, Device);
        }
        catch
        {
            _decoder.Dispose();
            throw;
        }
        _subscription = context.OnWeightsChanged(MarkStale);
    }

    /// <summary>
    /// Builds an engine on the device of <paramref name="parameters"/> (Hugging Face names) and subscribes it to
    /// <paramref name="context"/>'s weight changes. With <paramref name="referenceForward"/> (token ids [batch, seq] to
    /// logits [batch, seq, vocab]) the parity gate runs as <see cref="EngineOptions.ParityCheck"/> says.
    /// </summary>
    public static TorchSamplingEngine Create(TrainerContext context, LlamaArchitecture architecture,
        Func<IReadOnlyDictionary<string, Tensor>> parameters, ITokenCodec tokenizer, Func<Tensor, Tensor>? referenceForward = null,
        EngineOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(architecture);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new EngineOptions();
        Validate(options, architecture);
        var engine = new TorchSamplingEngine(context, architecture, parameters, tokenizer, referenceForward, options);
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

    /// <inheritdoc />
    public EngineOptions Options { get; }

    /// <inheritdoc />
    public int ContextLength { get; }

    /// <summary>The device the engine decodes on (the trainer model's).</summary>
    public Device Device { get; }

    /// <inheritdoc />
    public long WeightVersion => Interlocked.Read(ref _version);

    /// <inheritdoc />
    public bool IsStale => Volatile.Read(ref _stale) != 0;

    /// <inheritdoc />
    public bool HoldsCache { get { lock (_gate) return _decoder.HoldsCache; } }

    /// <inheritdoc />
    public long WeightBytes => _decoder.WeightBytes;

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

    void SyncLocked()
    {
        if (Interlocked.Exchange(ref _stale, 0) == 0) return;
        // No sequence outlives a Generate call, so the KV cache needs no flush: every sequence starts with a prefill.
        _decoder.CopyWeights(_parameters());
        Interlocked.Increment(ref _version);
        if (Options.ParityCheck == ParityCheckMode.EverySync && _referenceForward is not null) CheckParityLocked();
    }

    /// <inheritdoc />
    public void ReleaseCache()
    {
        lock (_gate) _decoder.ReleaseCache();
    }

    /// <inheritdoc />
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
        float maxDiff, scale;
        using (no_grad())
        using (NewDisposeScope())
        {
            var input = tensor(ids, [probeSequences, probeLength], ScalarType.Int64, Device);
            var reference = _referenceForward(input).to(ScalarType.Float32);
            if (!reference.shape.SequenceEqual(new long[] { probeSequences, probeLength, _arch.VocabSize }))
                throw new InvalidOperationException($"The reference forward returned shape [{string.Join(", ", reference.shape)}]; expected [{probeSequences}, {probeLength}, {_arch.VocabSize}].");
            var engine = _decoder.Prefill(input, null, null);
            var diff = (engine - reference).abs().nan_to_num(float.PositiveInfinity, float.PositiveInfinity, float.PositiveInfinity);
            maxDiff = diff.max().item<float>();
            scale = reference.abs().max().item<float>();
        }
        var report = new ParityReport(maxDiff, scale, tolerance);
        if (!(report.Relative <= tolerance))
            throw new WeightParityException(
                $"Engine logits differ from the trainer model's: max |diff| {maxDiff:G4} is {report.Relative:G4} of the logit scale {scale:G4}, " +
                $"above the tolerance {tolerance:G4} for {Options.WeightType} weights. The weight layout or the model config is wrong.");
        return report;
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
        if (Options.ReleaseCacheAfterGenerate) _decoder.ReleaseCache();
    }

    /// <inheritdoc />
    public int[] TokenizePrompt(string prompt)
    {
        return GenerateContract.PromptIds(_codec, Options.AddBos, prompt);
    }

    /// <summary>Runs <paramref name="action"/> under the engine's lock (tests: to observe serialisation).</summary>
    internal void UnderLock(Action action)
    {
        lock (_gate) action();
    }

    sealed class Sequence(int promptIndex, int sampleIndex, int[] prompt, long key)
    {
        public readonly int PromptIndex = promptIndex, SampleIndex = sampleIndex;
        public readonly int[] Prompt = prompt;
        public readonly long Key = key;
        public readonly List<int> Generated = new();
        public readonly List<float> LogProbs = new();
        public bool Prefilled;   // this chunk's column 0 holds its first token, not yet read by the host
        // Tokens generated, counting one still on the device after a prefill.
        public int Count => Generated.Count + (Prefilled ? 1 : 0);
        // Position its latest token is fed at (= tokens in the cache once it is fed).
        public int Position => Prompt.Length + Count - 1;
    }

    List<Completion> GenerateLocal(IReadOnlyList<int> promptIndices, List<int[]> tokenized, SamplingParams p)
    {
        var samples = promptIndices.ToDictionary(i => i, _ => new Sample[p.N]);
        var queue = new Queue<Sequence>();
        foreach (int i in promptIndices)
            for (int s = 0; s < p.N; s++)
                queue.Enqueue(new Sequence(i, s, tokenized[i], (long)new SampleRng(p.Seed, i, s).Next()));
        if (queue.Count == 0) return new List<Completion>();

        int slots = Math.Min(Options.MaxSequences, queue.Count);
        int chunk = Options.DecodeChunk;
        long version = WeightVersion;
        _decoder.EnsureCache();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var state = new DecodeState(_decoder, _arch, slots, chunk);
        var active = new Sequence?[slots];
        var host = new long[4 * slots];
        while (true)
        {
            var admitted = new List<int>();
            for (int s = 0; s < slots && queue.Count > 0; s++)
                if (active[s] is null)
                {
                    active[s] = queue.Dequeue();
                    admitted.Add(s);
                }
            if (active.All(s => s is null)) break;
            Prefill(state, active, admitted, p);

            // Every live slot can take this many more steps; ones finished by EOS or a stop string waste a few at most.
            int steps = chunk;
            foreach (var seq in active)
                if (seq is not null) steps = Math.Min(steps, Math.Min(p.MaxNewTokens - seq.Count, ContextLength - seq.Position));
            steps = Math.Max(steps, 0);
            if (steps > 0)
            {
                int span = 0;
                for (int s = 0; s < slots; s++)
                {
                    var seq = active[s];
                    host[s] = seq?.Position ?? 0;                               // position fed next
                    host[slots + s] = seq?.Count ?? 0;    // sample step (random stream counter)
                    host[2 * slots + s] = seq is null ? 0 : 1;                  // advances
                    host[3 * slots + s] = seq?.Key ?? 0;
                    if (seq is not null) span = Math.Max(span, seq.Position + steps);
                }
                span = Math.Min(ContextLength, (span + SpanBucket - 1) / SpanBucket * SpanBucket);
                state.Upload(host);
                for (int j = 1; j <= steps; j++) state.Step(_decoder, _sampler, p, j, span);
            }

            // One read of the chunk's tokens, then the finish rules on the host.
            long[] tokens;
            float[] logProbs;
            using (NewDisposeScope())
            {
                tokens = state.Tokens.narrow(1, 0, steps + 1).cpu().contiguous().data<long>().ToArray();
                logProbs = state.LogProbs.narrow(1, 0, steps + 1).cpu().contiguous().data<float>().ToArray();
            }
            for (int s = 0; s < slots; s++)
            {
                if (active[s] is not { } seq) continue;
                int first = seq.Prefilled ? 0 : 1;
                seq.Prefilled = false;
                for (int j = first; j <= steps; j++)
                {
                    seq.Generated.Add((int)tokens[s * (steps + 1) + j]);
                    seq.LogProbs.Add(logProbs[s * (steps + 1) + j]);
                    var finished = GenerateContract.Finish(_codec, seq.Generated, seq.Position, ContextLength, p, out string? text);
                    if (finished is { } reason)
                    {
                        samples[seq.PromptIndex][seq.SampleIndex] = new Sample(text ?? _codec.Decode(seq.Generated), seq.Generated.ToArray(),
                            seq.LogProbs.ToArray(), reason, version);
                        active[s] = null;
                        break;
                    }
                }
            }
        }
        return promptIndices.Select(i => new Completion(i, samples[i])).ToList();
    }

    /// <summary>Batched prefill of newly admitted slots (right-padded groups of at most PrefillTokens), each sampling its first token.</summary>
    void Prefill(DecodeState state, Sequence?[] active, List<int> admitted, SamplingParams p)
    {
        int at = 0;
        while (at < admitted.Count)
        {
            int count = 0, width = 0;
            while (at + count < admitted.Count)
            {
                int w = Math.Max(width, active[admitted[at + count]]!.Prompt.Length);
                if (count > 0 && (count + 1) * w > Options.PrefillTokens) break;
                width = w;
                count++;
            }
            var group = admitted.GetRange(at, count);
            at += count;
            var ids = new long[count * width];
            var last = new long[count];
            var keys = new long[count];
            for (int i = 0; i < count; i++)
            {
                var seq = active[group[i]]!;
                for (int t = 0; t < seq.Prompt.Length; t++) ids[i * width + t] = seq.Prompt[t];
                last[i] = seq.Prompt.Length - 1;
                keys[i] = seq.Key;
                seq.Prefilled = true;
            }
            using var scope = NewDisposeScope();
            var slotIndex = tensor(group.Select(s => (long)s).ToArray(), ScalarType.Int64, Device);
            var logits = _decoder.Prefill(tensor(ids, [count, width], ScalarType.Int64, Device), slotIndex, tensor(last, ScalarType.Int64, Device));
            var (token, logProb) = _sampler.Sample(logits, tensor(keys, ScalarType.Int64, Device), zeros(count, ScalarType.Int64, Device), p);
            state.Admit(slotIndex, token, logProb);
        }
    }

    /// <summary>Per-slot device state of one local generate: fed tokens, positions, random streams, the chunk's output.</summary>
    sealed class DecodeState
    {
        readonly int _slots;
        readonly Tensor _state, _positions, _steps, _advance, _keys, _current, _kvBase, _columns, _zero, _masked;
        public readonly Tensor Tokens, LogProbs;   // [slots, chunk + 1]; column 0: the prefill's token

        public DecodeState(TorchDecoder decoder, LlamaArchitecture a, int slots, int chunk)
        {
            var device = decoder.Device;
            _slots = slots;
            _state = zeros([4, slots], ScalarType.Int64, device);
            (_positions, _steps, _advance, _keys) = (_state[0], _state[1], _state[2], _state[3]);
            _current = zeros(slots, ScalarType.Int64, device);
            Tokens = zeros([slots, chunk + 1], ScalarType.Int64, device);
            LogProbs = zeros([slots, chunk + 1], ScalarType.Float32, device);
            // Flat cache row of (K or V, slot, KV head) at position 0, for a cache of decoder.Slots slots.
            var half = arange(2, ScalarType.Int64, device).view(1, 2, 1);
            var slot = arange(slots, ScalarType.Int64, device).view(slots, 1, 1);
            var head = arange(a.KvHeadCount, ScalarType.Int64, device).view(1, 1, a.KvHeadCount);
            _kvBase = ((half * decoder.Slots + slot) * a.KvHeadCount + head) * decoder.ContextLength;
            _columns = arange(decoder.ContextLength, ScalarType.Int64, device).unsqueeze(0);
            _zero = zeros(1, decoder.DType, device);
            _masked = full(1, float.NegativeInfinity, decoder.DType, device);
        }

        public void Upload(long[] host)
        {
            using var scope = NewDisposeScope();
            _state.copy_(tensor(host, [4, _slots], ScalarType.Int64));
        }

        public void Admit(Tensor slots, Tensor token, Tensor logProb)
        {
            _current.index_copy_(0, slots, token);
            Tokens.select(1, 0).index_copy_(0, slots, token);
            LogProbs.select(1, 0).index_copy_(0, slots, logProb);
        }

        public void Step(TorchDecoder decoder, TorchTokenSampler sampler, SamplingParams p, int column, int span)
        {
            using var scope = NewDisposeScope();
            var freqs = decoder.RopeAt(_positions).unsqueeze(1);
            var rows = _kvBase + _positions.view(-1, 1, 1);
            var mask = where(_columns.narrow(1, 0, span) <= _positions.unsqueeze(1), _zero, _masked).view(_slots, 1, 1, span);
            var logits = decoder.Decode(_current, freqs, rows, mask, _slots, span);
            var (token, logProb) = sampler.Sample(logits, _keys, _steps, p);
            _current.copy_(token);
            Tokens.select(1, column).copy_(token);
            LogProbs.select(1, column).copy_(logProb);
            _positions.add_(_advance);
            _steps.add_(_advance);
        }
    }

    static void Validate(EngineOptions o, LlamaArchitecture arch)
    {
        if (o.MaxSequences < 1) throw new ArgumentException($"MaxSequences must be at least 1, got {o.MaxSequences}.", nameof(o));
        if (o.ContextLength is < 2) throw new ArgumentException($"ContextLength must be at least 2, got {o.ContextLength}.", nameof(o));
        if (o.ContextLength > arch.MaxPositions) throw new ArgumentException($"ContextLength {o.ContextLength} exceeds the model's max positions {arch.MaxPositions}.", nameof(o));
        if (o.DecodeChunk < 1) throw new ArgumentException($"DecodeChunk must be at least 1, got {o.DecodeChunk}.", nameof(o));
        if (o.PrefillTokens < 1) throw new ArgumentException($"PrefillTokens must be at least 1, got {o.PrefillTokens}.", nameof(o));
        if (o.TopPCandidates < 1) throw new ArgumentException($"TopPCandidates must be at least 1, got {o.TopPCandidates}.", nameof(o));
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
            _sampler.Dispose();
            _decoder.Dispose();
        }
    }
}
