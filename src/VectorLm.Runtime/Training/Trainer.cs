using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using VectorLm.Data;
using VectorLm.Hosting;
using VectorLm.Models;
using static TorchSharp.torch;

namespace VectorLm.Training;

/// <summary>Settings of a <see cref="Trainer"/>.</summary>
public sealed record TrainerOptions
{
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Learning rate at the end of the cosine decay.</summary>
    public double MinLearningRate { get; init; } = 3e-4;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 10;
    /// <summary>Steps of the whole run (end of the cosine).</summary>
    public int TotalSteps { get; init; } = 1000;
    /// <summary>AdamW weight decay of matrices (norms and 1-D parameters get none).</summary>
    public double WeightDecay { get; init; } = 0.1;
    /// <summary>AdamW beta1.</summary>
    public double Beta1 { get; init; } = 0.9;
    /// <summary>AdamW beta2.</summary>
    public double Beta2 { get; init; } = 0.95;
    /// <summary>AdamW epsilon.</summary>
    public double Eps { get; init; } = 1e-8;
    /// <summary>Clip the total gradient norm to this; 0 or less disables clipping.</summary>
    public double GradClip { get; init; } = 1.0;
    /// <summary>Checkpoints kept under a checkpoint folder; older ones are removed after a successful save.</summary>
    public int KeepCheckpoints { get; init; } = 2;
}

/// <summary>
/// A plain training loop for a <see cref="LlamaModel"/>: AdamW with decay/no-decay groups, warm-up + cosine schedule,
/// gradient clipping, masked-label loss, atomic checkpoints and exact resume.
/// </summary>
/// <remarks>
/// <para>One <see cref="Step()"/> = next batch, forward, loss, backward, clip, set the scheduled learning rate,
/// optimizer step, zero gradients. Temporaries live in a dispose scope, so memory stays flat.</para>
/// <para>Checkpoint layout under a root folder: <c>step-NNNNNNNN/</c> holding <c>config.json</c>,
/// <c>model.safetensors</c> (with a LoRA adapter instead: <c>adapter_config.json</c> and
/// <c>adapter_model.safetensors</c>; the frozen base is not stored), <c>optimizer.bin</c> (TorchSharp optimizer state) and <c>trainer_state.json</c> (step,
/// data position, shuffle seed, every rank's torch CPU RNG state, the size of each file), plus a <c>latest</c> file
/// naming the newest. A checkpoint is written under <c>.tmp</c>, flushed to the disk (files, then the folder), renamed
/// when complete, and <c>latest</c> is replaced the same way, so a crash or power loss at any point leaves the previous
/// checkpoint and pointer intact; <see cref="Resume"/> skips a checkpoint that is incomplete anyway and takes the
/// previous complete one.</para>
/// <para>Under a distributed trainer <see cref="SaveCheckpoint"/> and <see cref="Resume"/> are collectives: rank 0
/// writes (the ranks hold identical weights and optimizer state) while the others wait, and every rank gets the same
/// folder or the same error; on resume rank 0 picks the checkpoint and every rank reads it.</para>
/// </remarks>
public sealed class Trainer : IDisposable
{
    const string OptimizerFile = "optimizer.bin";

    readonly List<Parameter> _parameters;

    /// <summary>The model being trained.</summary>
    public LlamaModel Model { get; }
    /// <summary>Where batches come from.</summary>
    public ShardedDataLoader Data { get; }
    /// <summary>The optimizer (group 0 decayed, group 1 not).</summary>
    public AdamW Optimizer { get; }
    /// <summary>Learning rate per step.</summary>
    public CosineSchedule Schedule { get; }
    /// <summary>Settings.</summary>
    public TrainerOptions Options { get; }
    /// <summary>Steps taken so far (restored by <see cref="Resume"/>).</summary>
    public int StepCount { get; private set; }

    /// <summary>Test hook: called with the partial checkpoint folder after the model is written.</summary>
    internal static Action<string>? AfterModelWritten;
    /// <summary>Test hook: called with the finished checkpoint folder before <c>latest</c> points at it.</summary>
    internal static Action<string>? AfterFolderRenamed;

    /// <summary>
    /// A trainer for <paramref name="model"/> on <paramref name="data"/>. Under a distributed trainer this is a
    /// collective: the optimizer's creation overwrites every rank's parameters with rank 0's
    /// (<see cref="Optimizers.AdamW"/>), before any forward.
    /// </summary>
    [Collective]
    public Trainer(LlamaModel model, ShardedDataLoader data, TrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        Model = model;
        Data = data;
        Options = options ?? new TrainerOptions();
        Schedule = new CosineSchedule(Options.LearningRate, Options.WarmupSteps, Options.TotalSteps, Options.MinLearningRate);
        Optimizer = Optimizers.AdamW(model, Options.LearningRate, Options.WeightDecay, Options.Beta1, Options.Beta2, Options.Eps);
        _parameters = model.parameters().Where(p => p.requires_grad).ToList();
        model.train();
    }

    /// <summary>Takes one step on the loader's next batch (a collective under a distributed trainer).</summary>
    [Collective]
    public StepMetrics Step()
    {
        using var batch = Data.Next();
        return Step(batch);
    }

    /// <summary>
    /// Takes one step on <paramref name="batch"/>. Under a distributed trainer (<see cref="TrainerContextScope.Current"/>)
    /// gradients are averaged over ranks before clipping and the engines made from the context are marked stale.
    /// </summary>
    [Collective]
    public StepMetrics Step(Batch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        long start = Stopwatch.GetTimestamp();
        double lr = Schedule.LearningRate(StepCount);
        foreach (var group in Optimizer.ParamGroups) group.LearningRate = lr;
        double loss, norm;
        using (var scope = NewDisposeScope())
        {
            var lossTensor = Model.Loss(batch.InputIds, batch.Labels);
            lossTensor.backward();
            // Under a distributed trainer: average over ranks first, so clipping sees what DDP would clip.
            CollectiveInterceptors.AverageGradients(Optimizer);
            // The norm stays on the device until the loss is read: one host synchronisation per step.
            Tensor? normTensor = Options.GradClip <= 0 ? null
                : Optimizer is FlatAdamW flat ? flat.ClipGradNorm(Options.GradClip)
                : tensor(nn.utils.clip_grad_norm_(_parameters, Options.GradClip));
            CollectiveInterceptors.OptimizerStep(Optimizer, null);
            Optimizer.zero_grad();
            loss = lossTensor.item<float>();
            norm = normTensor is null ? double.NaN : normTensor.ToDouble();
        }
        StepCount++;
        return new StepMetrics(StepCount, loss, lr, norm, batch.TokenCount, Stopwatch.GetElapsedTime(start).TotalSeconds);
    }

    /// <summary>
    /// Writes a checkpoint of the current step under <paramref name="root"/> and returns its folder. Atomic and
    /// durable: the previous checkpoint and <c>latest</c> pointer survive any failure, crash or power loss. Under a
    /// distributed trainer every rank calls it (a collective): rank 0 writes, the others wait and get the same folder.
    /// </summary>
    /// <exception cref="IOException">The folder cannot be written; the message names it (on every rank).</exception>
    [Collective]
    public string SaveCheckpoint(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        string myRng;
        using (var rng = torch.random.get_rng_state()) myRng = Convert.ToBase64String(rng.bytes);
        var ctx = TrainerContextScope.Current;
        if (ctx is not { WorldSize: > 1 }) return WriteCheckpoint(root, [myRng]);

        var rngStates = ctx.AllGatherObject(myRng);
        return OnRank0(ctx, () => WriteCheckpoint(root, rngStates),
            error => new IOException($"rank 0 could not write the checkpoint: {error}"))!;
    }

    /// <summary>
    /// Runs <paramref name="work"/> on rank 0 only and returns its result on every rank (a collective). When it throws,
    /// rank 0 rethrows and the other ranks throw <paramref name="elsewhere"/>(the message) instead of waiting.
    /// </summary>
    static T? OnRank0<T>(TrainerContext ctx, Func<T> work, Func<string, Exception> elsewhere)
    {
        Outcome<T>? mine = null;
        Exception? failure = null;
        if (ctx.IsMainRank)
        {
            try { mine = new Outcome<T>(work(), null); }
            catch (Exception e) { (failure, mine) = (e, new Outcome<T>(default, e.Message)); }
        }
        var outcome = ctx.BroadcastObject(mine)!; // one call site on every rank, success or not
        if (failure is not null) ExceptionDispatchInfo.Capture(failure).Throw();
        return outcome.Error is null ? outcome.Value : throw elsewhere(outcome.Error);
    }

    sealed record Outcome<T>(T? Value, string? Error);

    string WriteCheckpoint(string root, IReadOnlyList<string> rngStates)
    {
        string final = Path.Combine(root, CheckpointLayout.FolderName(StepCount));
        string tmp = final + ".tmp";
        try
        {
            if (!Directory.Exists(root))
            {
                Directory.CreateDirectory(root);
                DurableFiles.Sync(Path.GetDirectoryName(Path.GetFullPath(root))!);
            }
            if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true); // left by an earlier crash
            Directory.CreateDirectory(tmp);
            // With a LoRA adapter the base is frozen: the checkpoint holds the adapter (PEFT layout), not the base.
            if (Model.Lora is not null) Model.SaveAdapter(tmp);
            else Model.SaveTo(tmp);
            AfterModelWritten?.Invoke(tmp);
            Optimizer.save_state_dict(Path.Combine(tmp, OptimizerFile));
            // Written last, with the size of every other file: its presence and those sizes make the checkpoint complete.
            var state = new JsonObject
            {
                ["step"] = StepCount,
                ["epoch"] = Data.Position.Epoch,
                ["batch_in_epoch"] = Data.Position.BatchInEpoch,
                ["data_seed"] = Data.Seed,
                ["world_size"] = Data.WorldSize,
                ["batch_size"] = Data.BatchSize,
                ["torch_rng_states"] = new JsonArray(rngStates.Select(r => (JsonNode?)r).ToArray()),
                ["files"] = CheckpointLayout.FileSizes(tmp),
            };
            File.WriteAllText(Path.Combine(tmp, CheckpointLayout.StateFile), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            DurableFiles.SyncTree(tmp);
            // Re-saving the same step: move the old copy aside first, so some complete copy always exists.
            string replaced = final + ".old";
            if (Directory.Exists(replaced)) Directory.Delete(replaced, recursive: true);
            if (Directory.Exists(final)) Directory.Move(final, replaced);
            Directory.Move(tmp, final);
            DurableFiles.Sync(root);
            AfterFolderRenamed?.Invoke(final);
            DurableFiles.WriteAllText(Path.Combine(root, CheckpointLayout.LatestFile), CheckpointLayout.FolderName(StepCount));
            TryDelete(replaced);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tmp);
            throw new IOException($"cannot write checkpoint for step {StepCount} under '{root}': {e.Message}", e);
        }
        catch
        {
            TryDelete(tmp);
            throw;
        }
        if (Options.KeepCheckpoints > 0)
            foreach (var old in CheckpointLayout.BeyondNewest(root, Options.KeepCheckpoints)) TryDelete(old);
        return final;
    }

    static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>
    /// The checkpoint under <paramref name="root"/> that <see cref="Resume"/> would load: the one <c>latest</c> names
    /// when it is complete, else the newest complete one; null when there is none.
    /// </summary>
    /// <exception cref="InvalidDataException"><c>latest</c> names something other than a checkpoint folder of this root.</exception>
    public static string? LatestCheckpoint(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        return CheckpointLayout.NewestComplete(root);
    }

    /// <summary>
    /// Restores model, optimizer, step, data position and this rank's RNG from the newest complete checkpoint under
    /// <paramref name="root"/> (an incomplete newer one is skipped, with a warning on standard error); returns false,
    /// changing nothing, when there is none. Under a distributed trainer every rank calls it (a collective): rank 0
    /// picks the checkpoint and every rank loads that one.
    /// </summary>
    [Collective]
    public bool Resume(string root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var ctx = TrainerContextScope.Current;
        string? Choose() => CheckpointLayout.NewestComplete(root,
            (skipped, why) => Console.Error.WriteLine($"warning: checkpoint {skipped} is incomplete ({why}); skipping it"));
        string? folder = ctx is { WorldSize: > 1 }
            ? OnRank0(ctx, Choose, error => new InvalidDataException($"rank 0 could not choose a checkpoint under '{root}': {error}"))
            : Choose();
        if (folder is null) return false;

        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, CheckpointLayout.StateFile)))!.AsObject();
        int worldSize = state["world_size"]!.GetValue<int>(), batchSize = state["batch_size"]!.GetValue<int>();
        long seed = state["data_seed"]!.GetValue<long>();
        if (worldSize != Data.WorldSize || batchSize != Data.BatchSize || seed != Data.Seed)
            throw new InvalidDataException($"{folder}: saved with world size {worldSize}, batch size {batchSize}, data seed {seed}; this run has {Data.WorldSize}, {Data.BatchSize}, {Data.Seed}");
        bool adapterCheckpoint = File.Exists(Path.Combine(folder, LlamaModel.AdapterConfigFileName));
        if (adapterCheckpoint != (Model.Lora is not null))
            throw new InvalidDataException(adapterCheckpoint
                ? $"{folder}: the checkpoint holds a LoRA adapter but the model has none; call AddLora before creating the Trainer"
                : $"{folder}: the checkpoint holds full weights but the model has a LoRA adapter");
        if (adapterCheckpoint) Model.LoadAdapter(folder);
        else
        {
            var config = LlamaConfig.Load(Path.Combine(folder, "config.json"));
            if (config != Model.Config) throw new InvalidDataException($"{folder}: the checkpoint's config differs from the model's");
            using var weights = SafetensorsFolder.Open(folder);
            Model.LoadWeights(weights);
        }
        Optimizer.load_state_dict(Path.Combine(folder, OptimizerFile));
        StepCount = state["step"]!.GetValue<int>();
        Data.Seek(new DataPosition(state["epoch"]!.GetValue<int>(), state["batch_in_epoch"]!.GetValue<int>()));
        var rngStates = state["torch_rng_states"]!.AsArray();
        byte[] rng = Convert.FromBase64String(rngStates[Data.Rank]!.GetValue<string>());
        using var rngTensor = tensor(rng, ScalarType.Byte);
        torch.random.set_rng_state(rngTensor);
        ctx?.NotifyWeightsChanged();
        return true;
    }

    /// <summary>Frees the optimizer state (the model stays usable).</summary>
    public void Dispose() => Optimizer.Dispose();
}
