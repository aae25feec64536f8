using TorchSharp;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>
/// TorchSharp sampling on the trainer model's own device (CUDA or CPU), with the same contract as
/// <see cref="LlamaSamplingEngine"/>. It keeps a copy of the weights laid out for decoding (fused QKV and gate/up, in
/// <see cref="EngineOptions.WeightType"/>); after an optimizer step it is marked stale and the next Generate or
/// <see cref="ColocatedSampler.SyncWeights"/> overwrites that copy with on-device copies and increments <see cref="ColocatedSampler.WeightVersion"/>.
/// Thread-safe: calls are serialised. A LoRA adapter on the model is applied on top of the base in decoding, and a
/// sync with a frozen base writes only the adapter's tensors.
/// </summary>
/// <remarks>
/// Decoding runs a fixed set of sequence slots over a preallocated KV cache written in place. Finished slots are
/// refilled from the queue with a batched prefill. The device runs <see cref="EngineOptions.DecodeChunk"/> steps between
/// two reads of the sampled tokens: positions, tokens and random streams stay on the device, and attention covers only
/// the longest live sequence, rounded up to a bucket.
/// </remarks>
public sealed class TorchSamplingEngine : ColocatedSampler
{
    const int SpanBucket = 64;

    readonly TorchDecoder _decoder;
    readonly TorchTokenSampler _sampler;

    TorchSamplingEngine(TrainerContext context, LlamaArchitecture arch, Func<IReadOnlyDictionary<string, Tensor>> parameters,
        ITokenCodec codec, Func<Tensor, Tensor>? referenceForward, EngineOptions options, LoraSource? lora)
        : base(context, arch, parameters, codec, referenceForward, options, lora)
    {
        var source = parameters();
        if (source.Count == 0) throw new ArgumentException("The model has no parameters.", nameof(parameters));
        Device = source.Values.First().device;
        WeightType = SamplerExtensions.ResolveWeightType(options.WeightType, SamplingBackend.Torch, Device);
        var dtype = WeightType switch
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
    }

    /// <summary>
    /// Builds an engine on the device of <paramref name="parameters"/> (Hugging Face names) and subscribes it to
    /// <paramref name="context"/>'s weight changes. With <paramref name="referenceForward"/> (token ids [batch, seq] to
    /// logits [batch, seq, vocab]) the parity gate runs as <see cref="EngineOptions.ParityCheck"/> says.
    /// </summary>
    public static TorchSamplingEngine Create(TrainerContext context, LlamaArchitecture architecture,
        Func<IReadOnlyDictionary<string, Tensor>> parameters, ITokenCodec tokenizer, Func<Tensor, Tensor>? referenceForward = null,
        EngineOptions? options = null) =>
        Create(context, architecture, parameters, tokenizer, referenceForward, options, lora: null);

    /// <summary>As the public <c>Create</c>, plus a model's LoRA adapter, applied on top of the base in decoding.</summary>
    internal static TorchSamplingEngine Create(TrainerContext context, LlamaArchitecture architecture,
        Func<IReadOnlyDictionary<string, Tensor>> parameters, ITokenCodec tokenizer, Func<Tensor, Tensor>? referenceForward,
        EngineOptions? options, LoraSource? lora) =>
        Build(context, architecture, parameters, tokenizer, options, Validate,
            o => new TorchSamplingEngine(context, architecture, parameters, tokenizer, referenceForward, o, lora));

    /// <summary>The device the engine decodes on (the trainer model's).</summary>
    public Device Device { get; }

    /// <inheritdoc />
    public override long WeightBytes => _decoder.WeightBytes;

    /// <inheritdoc />
    public override EngineWeightType WeightType { get; }

    internal TorchDecoder Decoder => _decoder;

    /// <summary>
    /// Copy kernels the last sync issued (base and adapter): one per copied weight block when the trainer's tensors
    /// are stacked in one buffer, none for blocks the engine reads in place (<see cref="AliasedBytes"/>).
    /// </summary>
    internal int LastSyncCopyKernels { get; private set; }

    /// <summary>Bytes of the engine's weights read in place from the trainer's buffers rather than copied (0 with an adapter).</summary>
    internal long AliasedBytes => UnderLock(() => _decoder.AliasedBytes);

    /// <summary>Bytes of weight storage the engine holds itself: with <see cref="AliasedBytes"/>, <see cref="WeightBytes"/> (no copy is kept of what is read in place).</summary>
    internal long StoredWeightBytes => UnderLock(() => _decoder.StoredBytes);

    /// <summary>Whether the engine may read the trainer's weights in place (true by default); applies from the next sync (tests, benchmarks).</summary>
    internal bool AliasTrainerWeights
    {
        get => UnderLock(() => _decoder.AliasTrainerWeights);
        set => UnderLock(() => _decoder.AliasTrainerWeights = value);
    }

    private protected override bool HoldsCacheLocked => _decoder.HoldsCache;

    private protected override long AdapterBytesLocked => _decoder.Adapter?.SyncBytes ?? 0;   // its values; B's zero blocks are not counted

    private protected override long CopyBaseWeights(IReadOnlyDictionary<string, Tensor> parameters, bool onlyTrainable)
    {
        long bytes = _decoder.CopyWeights(parameters, onlyTrainable);
        LastSyncCopyKernels += _decoder.LastCopyKernels;
        return bytes;
    }

    private protected override void BeginSync() => LastSyncCopyKernels = 0;

    /// <summary>Whether a LoRA adapter is folded into the engine's base copy at each sync (see <see cref="EngineOptions.MergeLoraOnSync"/>).</summary>
    public bool MergesAdapter => Options.MergeLoraOnSync ?? Device.type == DeviceType.CUDA;

    private protected override bool AdapterNeedsFreshBase => MergesAdapter;

    private protected override bool AdapterFits(IReadOnlyList<LoraWeights> weights) => _decoder.Adapter?.Fits(weights) == true;

    private protected override long LoadAdapter(IReadOnlyList<LoraWeights> weights)
    {
        _decoder.SetAdapter(null);
        var adapter = TorchLoraAdapter.Create(Architecture, Device, _decoder.DType, weights);
        long baseBytes = _decoder.SetAdapter(adapter);   // blocks read in place get their own copy first
        LastSyncCopyKernels += _decoder.LastCopyKernels + adapter.LastCopyKernels;
        if (MergesAdapter) _decoder.MergeAdapter();
        return baseBytes + adapter.SyncBytes;
    }

    private protected override long CopyAdapter(IReadOnlyList<LoraWeights> weights)
    {
        long bytes = _decoder.Adapter!.CopyWeights(weights);
        LastSyncCopyKernels += _decoder.Adapter.LastCopyKernels;
        if (MergesAdapter) _decoder.MergeAdapter();
        return bytes;
    }

    private protected override void DropAdapter() => _decoder.SetAdapter(null);

    // No sequence outlives a Generate call, so a sync needs no KV flush: every sequence starts with a prefill.

    private protected override void ReleaseCacheLocked() => _decoder.ReleaseCache();

    private protected override float[] Logits(int[] tokens)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var input = tensor(tokens.Select(t => (long)t).ToArray(), [1, tokens.Length], ScalarType.Int64, Device);
        return _decoder.Prefill(input, null, null).cpu().contiguous().data<float>().ToArray();
    }

    private protected override (float MaxDiff, float Scale, string Where) CompareWithReference(long[] ids, int sequences, int length)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var input = tensor(ids, [sequences, length], ScalarType.Int64, Device);
        var reference = Reference(input);
        var engine = _decoder.Prefill(input, null, null);
        var diff = (engine - reference).abs().nan_to_num(float.PositiveInfinity, float.PositiveInfinity, float.PositiveInfinity);
        return (diff.max().item<float>(), reference.abs().max().item<float>(), "");
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

    private protected override List<Completion> GenerateLocal(IReadOnlyList<int> promptIndices, List<int[]> tokenized, SamplingParams p)
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
        var state = new DecodeState(_decoder, Architecture, slots, chunk);
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
                    var finished = GenerateContract.Finish(Codec, seq.Generated, seq.Position, ContextLength, p, out string? text);
                    if (finished is { } reason)
                    {
                        samples[seq.PromptIndex][seq.SampleIndex] = new Sample(text ?? Codec.Decode(seq.Generated), seq.Generated.ToArray(),
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
            var rope = decoder.RopeAt(_positions);
            var rows = _kvBase + _positions.view(-1, 1, 1);
            var mask = where(_columns.narrow(1, 0, span) <= _positions.unsqueeze(1), _zero, _masked).view(_slots, 1, 1, span);
            var logits = decoder.Decode(_current, rope, rows, mask, _slots, span);
            var (token, logProb) = sampler.Sample(logits, _keys, _steps, p);
            _current.copy_(token);
            Tokens.select(1, column).copy_(token);
            LogProbs.select(1, column).copy_(logProb);
            _positions.add_(_advance);
            _steps.add_(_advance);
        }
    }

    static void Validate(EngineOptions o)
    {
        if (o.DecodeChunk < 1) throw new ArgumentException($"DecodeChunk must be at least 1, got {o.DecodeChunk}.", nameof(o));
        if (o.PrefillTokens < 1) throw new ArgumentException($"PrefillTokens must be at least 1, got {o.PrefillTokens}.", nameof(o));
        if (o.TopPCandidates < 1) throw new ArgumentException($"TopPCandidates must be at least 1, got {o.TopPCandidates}.", nameof(o));
    }

    private protected override void DisposeEngine()
    {
        _sampler.Dispose();
        _decoder.Dispose();
    }
}
