using System.Runtime.CompilerServices;
using TorchSharp;
using VectorLm.Distributed;
using VectorLm.Models;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Sampling;

/// <summary>
/// llama.cpp (through LLamaSharp's native libraries) sampling from the model being trained. Built in memory from the
/// trainer's parameters; after an optimizer step it is marked stale and the next <c>Generate</c> or
/// <see cref="ColocatedSampler.SyncWeights"/> overwrites its weights in place, clears the KV cache and increments
/// <see cref="ColocatedSampler.WeightVersion"/>. Thread-safe: calls are serialised.
/// </summary>
public sealed unsafe class LlamaSamplingEngine : ColocatedSampler
{
    readonly EngineModel _model;
    readonly TokenSampler _sampler;
    EngineLoraAdapter? _adapter;
    float _adapterScale;
    LlamaContextHandle? _context;

    LlamaSamplingEngine(TrainerContext context, LlamaArchitecture arch, Func<IReadOnlyDictionary<string, Tensor>> parameters,
        ITokenCodec codec, Func<Tensor, Tensor>? referenceForward, EngineOptions options, LoraSource? lora)
        : base(context, arch, parameters, codec, referenceForward, options, lora)
    {
        Threads = options.Threads ?? DefaultThreads(Environment.ProcessorCount, context.LocalWorldSize);
        WeightType = SamplerExtensions.ResolveWeightType(options.WeightType, SamplingBackend.LlamaCpp, CPU);
        _sampler = new TokenSampler(arch.VocabSize);
        _model = EngineModel.Build(arch, parameters(), codec, WeightType);
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
        EngineOptions? options, LoraSource? lora) =>
        Build(context, architecture, parameters, tokenizer, options, Validate, o =>
        {
            NativeLog.Install();
            return new LlamaSamplingEngine(context, architecture, parameters, tokenizer, referenceForward, o, lora);
        });

    /// <summary>llama.cpp threads used for decoding.</summary>
    public int Threads { get; }

    /// <summary>Bytes the engine's weights occupy (what a swap copies).</summary>
    public override long WeightBytes => _model.SourcedBytes;

    /// <inheritdoc />
    public override EngineWeightType WeightType { get; }

    private protected override bool HoldsCacheLocked => _context is not null;

    private protected override long AdapterBytesLocked => _adapter?.Bytes ?? 0;

    internal EngineModel Model => _model;

    private protected override long CopyBaseWeights(IReadOnlyDictionary<string, Tensor> parameters, bool onlyTrainable) =>
        _model.CopyWeights(parameters, onlyTrainable);

    private protected override bool AdapterFits(IReadOnlyList<LoraWeights> weights) => _adapter?.Fits(weights) == true;

    private protected override long LoadAdapter(IReadOnlyList<LoraWeights> weights)
    {
        DropAdapter();
        _adapter = EngineLoraAdapter.Load(_model, weights);
        SetScale(weights);
        return _adapter.Bytes;
    }

    private protected override long CopyAdapter(IReadOnlyList<LoraWeights> weights)
    {
        long bytes = _adapter!.CopyWeights(weights);
        SetScale(weights);
        return bytes;
    }

    void SetScale(IReadOnlyList<LoraWeights> weights)
    {
        float scale = (float)weights[0].Scale;
        if (weights.Any(w => (float)w.Scale != scale))
            throw new InvalidOperationException("The adapter's modules have different scales; the llama.cpp engine applies one scale per adapter.");
        _adapterScale = scale;
        if (_context is not null) SetAdapterOn(_context);
    }

    // Cached keys/values were computed with the old weights; live sequences go with them.
    private protected override void OnWeightsReplaced()
    {
        if (_context is not null) LlamaNative.MemoryClear(_context, data: true);
    }

    void SetAdapterOn(LlamaContextHandle context)
    {
        int rc = LlamaNative.SetAdaptersLora(context, _adapter?.Handle ?? IntPtr.Zero, _adapterScale);
        if (rc != 0) throw new InvalidOperationException($"llama_set_adapters_lora returned {rc}.");
    }

    private protected override void DropAdapter()
    {
        if (_adapter is null) return;
        if (_context is not null) LlamaNative.SetAdaptersLora(_context, IntPtr.Zero, 0);
        _adapter.Dispose();
        _adapter = null;
    }

    private protected override void ReleaseCacheLocked()
    {
        _context?.Dispose();
        _context = null;
    }

    private protected override (float MaxDiff, float Scale, string Where) CompareWithReference(long[] ids, int probeSequences, int probeLength)
    {
        float[] reference;
        var device = Parameters().Values.First().device;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var input = torch.tensor(ids, [probeSequences, probeLength], ScalarType.Int64, device);
            reference = Reference(input).cpu().contiguous().data<float>().ToArray();
        }

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
                var engine = new ReadOnlySpan<float>(LlamaNative.GetLogitsIth(context, p), Architecture.VocabSize);
                var expected = reference.AsSpan((s * probeLength + p) * Architecture.VocabSize, Architecture.VocabSize);
                for (int v = 0; v < engine.Length; v++)
                {
                    float d = Math.Abs(engine[v] - expected[v]);
                    if (!(d <= maxDiff)) { maxDiff = float.IsNaN(d) ? float.PositiveInfinity : d; worstSeq = s; worstPos = p; }
                    scale = Math.Max(scale, Math.Abs(expected[v]));
                }
            }
        }
        LlamaNative.MemoryClear(context, data: true);
        return (maxDiff, scale, $" (probe sequence {worstSeq}, position {worstPos})");
    }

    private protected override float[] Logits(int[] tokens)
    {
        var context = EnsureContext();
        LlamaNative.MemoryClear(context, data: true);
        using var batch = new BatchBuffer(Math.Max(tokens.Length, Options.BatchTokens));
        for (int p = 0; p < tokens.Length; p++) batch.Add(tokens[p], p, 0, logits: true);
        Decode(context, batch);
        var result = new float[tokens.Length * Architecture.VocabSize];
        for (int p = 0; p < tokens.Length; p++)
            new ReadOnlySpan<float>(LlamaNative.GetLogitsIth(context, p), Architecture.VocabSize).CopyTo(result.AsSpan(p * Architecture.VocabSize));
        LlamaNative.MemoryClear(context, data: true);
        return result;
    }

    /// <summary>Largest KV position held by sequence slot <paramref name="sequence"/> (-1 when empty or no cache).</summary>
    internal int CachedPositionMax(int sequence) => UnderLock(() => _context is null ? -1 : LlamaNative.MemorySeqPositionMax(_context, sequence));

    /// <summary>Feeds <paramref name="tokens"/> into sequence slot 0 and leaves them cached (tests: to see the KV clear).</summary>
    internal void Prefill(int[] tokens) => UnderLock(() =>
    {
        var context = EnsureContext();
        using var batch = new BatchBuffer(Math.Max(tokens.Length, Options.BatchTokens));
        for (int p = 0; p < tokens.Length; p++) batch.Add(tokens[p], p, 0, logits: p == tokens.Length - 1);
        Decode(context, batch);
    });

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

    private protected override List<Completion> GenerateLocal(IReadOnlyList<int> promptIndices, List<int[]> tokenized, SamplingParams p)
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
                var logits = new ReadOnlySpan<float>(LlamaNative.GetLogitsIth(context, seq.BatchIndex), Architecture.VocabSize);
                seq.BatchIndex = -1;
                int token = _sampler.Sample(logits, p, ref seq.Rng, out float logProb);
                seq.Generated.Add(token);
                seq.LogProbs.Add(logProb);
                var finished = GenerateContract.Finish(Codec, seq.Generated, seq.Fed, ContextLength, p, out string? text);
                if (finished is { } reason)
                {
                    samples[seq.PromptIndex][seq.SampleIndex] = new Sample(text ?? Codec.Decode(seq.Generated), seq.Generated.ToArray(),
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
        if (WeightType == EngineWeightType.F32) { cp.TypeK = cp.TypeV = GgmlType.F32; cp.FlashAttentionType = 0; }
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

    static void Validate(EngineOptions o)
    {
        if (o.BatchTokens < o.MaxSequences) throw new ArgumentException($"BatchTokens ({o.BatchTokens}) must be at least MaxSequences ({o.MaxSequences}).", nameof(o));
        if (o.Threads is < 1) throw new ArgumentException($"Threads must be at least 1, got {o.Threads}.", nameof(o));
    }

    private protected override void DisposeEngine()
    {
        _context?.Dispose();
        _context = null;
        _adapter?.Dispose();
        _adapter = null;
        _model.Dispose();
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
