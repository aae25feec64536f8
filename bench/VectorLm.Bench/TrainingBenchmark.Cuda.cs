using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using VectorLm.Data;
using VectorLm.Distributed;
using VectorLm.Hosting;
using VectorLm.Models;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// <c>training --device cuda</c>: the SDK's <see cref="Trainer"/> step at each <c>--precision</c> on a GPU (default: the
/// 350M config, batch 8 x 1024), beside PyTorch's figures for the same config (<c>--pytorch file.json</c>, written by
/// <c>bench/gpu/training_pytorch.py</c> in the same job), plus a per-phase profile (forward, backward, clip,
/// optimizer). <c>training --device cuda --scaling --nproc-per-node N [--nnodes 2 --node-rank R ...]</c>: data-parallel
/// bf16-mixed training of the same model over the launched ranks; rank 0 writes its timing and losses as JSON to
/// <c>--out</c> (the script assembles scaling-cuda.json), and no report is saved by this process.
/// </summary>
public sealed partial class TrainingBenchmark
{
    static readonly LlamaConfig Config350M = new()
    {
        VocabSize = 32000, HiddenSize = 1024, NumHiddenLayers = 24, NumAttentionHeads = 16, NumKeyValueHeads = 8,
        IntermediateSize = 2816, MaxPositionEmbeddings = 1024, RmsNormEps = 1e-5, RopeTheta = 10000,
    };

    const int CudaWarmup = 5;

    static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    static int IntArg(string[] args, string name, int fallback) =>
        Arg(args, name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    static LlamaConfig CudaConfig(string name) => name switch
    {
        "350M" => Config350M,
        _ => Configs.FirstOrDefault(c => c.Name == name).Config ?? throw new ArgumentException($"unknown config '{name}'; use 350M, tiny, 10M or 50M"),
    };

    static BenchReport RunCuda(string[] args, Device device)
    {
        int batch = IntArg(args, "--batch", 8), sequence = IntArg(args, "--sequence", 1024), steps = IntArg(args, "--steps", 10);
        string configName = Arg(args, "--config") ?? "350M";
        var config = CudaConfig(configName) with { MaxPositionEmbeddings = Math.Max(sequence, 16) };
        var precisions = (Arg(args, "--precisions") ?? "32-true,tf32,bf16-mixed,bf16-true").Split(',').Select(Precision.Parse).ToList();
        var pytorch = Arg(args, "--pytorch") is { } file ? JsonNode.Parse(File.ReadAllText(file))!["rows"]!.AsArray() : null;

        var report = new BenchReport("training-cuda");
        long tokens = (long)batch * sequence;
        foreach (var precision in precisions)
        {
            var (stepMs, phases) = MeasureTrainer(config, precision, device, batch, sequence, steps);
            double ms = Median(stepMs);
            var torchRow = pytorch?.FirstOrDefault(r => (string?)r!["precision"] == precision.Name && (string?)r!["config"] == configName);
            double? torchMs = torchRow is null ? null : (double)torchRow["pytorch_ms"]!;
            report.Add(
                ("config", configName),
                ("precision", precision.Name),
                ("vectorlm_ms", Math.Round(ms, 2)),
                ("pytorch_ms", torchMs is { } t ? Math.Round(t, 2) : null),
                ("ratio", torchMs is { } t2 ? Math.Round(ms / t2, 3) : null),
                ("vectorlm_tok_s", Math.Round(tokens / ms * 1000)),
                ("pytorch_tok_s", torchMs is { } t3 ? Math.Round(tokens / t3 * 1000) : null),
                ("forward_ms", Math.Round(phases[0], 2)),
                ("backward_ms", Math.Round(phases[1], 2)),
                ("clip_ms", Math.Round(phases[2], 2)),
                ("optimizer_ms", Math.Round(phases[3], 2)),
                ("steps", stepMs.Count));
            Console.Error.WriteLine($"{configName} {precision}: {ms:F1} ms (pytorch {torchMs?.ToString("F1", CultureInfo.InvariantCulture) ?? "-"})");
        }
        report.Extra["batch"] = batch;
        report.Extra["sequence"] = sequence;
        report.Extra["device"] = device.ToString();
        report.Extra["gpu"] = GpuName();
        report.Extra["command"] = "bench/gpu/training.sh (" + string.Join(' ', Environment.GetCommandLineArgs().Skip(1)) + ")";
        if (pytorch is not null) report.Extra["pytorch"] = JsonNode.Parse(File.ReadAllText(Arg(args, "--pytorch")!))!["setup"]?.DeepClone();
        report.Notes.Add($"median of {steps} Trainer.Step calls after {CudaWarmup} warm-up steps: forward, f32 cross-entropy, backward, gradient-norm clipping to 1.0, AdamW (FlatAdamW: decay/no-decay groups, betas 0.9/0.95), zero_grad, loss.item()");
        report.Notes.Add("forward/backward/clip/optimizer_ms: a separate profile of the same step with a CUDA synchronize after each phase (sums exceed the step by the syncs)");
        report.Notes.Add("pytorch: transformers LlamaForCausalLM, same config, init std 0.02, torch.optim.AdamW (default foreach), same batch; bf16-mixed = torch.autocast(cuda, bfloat16) over the forward and loss; tf32 = allow_tf32; bf16-true = model.to(bfloat16)");
        return report;
    }

    static string GpuName()
    {
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", "--query-gpu=name --format=csv,noheader") { RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            string name = p.StandardOutput.ReadToEnd().Split('\n')[0].Trim();
            p.WaitForExit();
            return name;
        }
        catch (System.ComponentModel.Win32Exception) { return "unknown"; }
    }

    static ShardedDataLoader RandomTokens(LlamaConfig config, int batch, int sequence, int steps, Device device, int rank = 0, int worldSize = 1)
    {
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, batch * sequence * worldSize * (steps + 2) + 1).Select(_ => rng.Next(config.VocabSize)).ToList();
        return new ShardedDataLoader(PackedDataset.FromTokenIds(tokens, sequence), batch, seed: 0, rank: rank, worldSize: worldSize, device: device);
    }

    static (List<double> StepMs, double[] PhaseMs) MeasureTrainer(LlamaConfig config, Precision precision, Device device, int batch, int sequence, int steps)
    {
        using var use = precision.Use();
        using var model = LlamaModel.Create(config, device, seed: 1);
        var loader = RandomTokens(config, batch, sequence, CudaWarmup + 2 * steps, device);
        using var trainer = new Trainer(model, loader, new TrainerOptions { LearningRate = 1e-4, WarmupSteps = 2, TotalSteps = 1000 });
        for (int i = 0; i < CudaWarmup; i++) trainer.Step();
        var stepMs = new List<double>();
        for (int i = 0; i < steps; i++)
        {
            Sync();
            long t0 = Stopwatch.GetTimestamp();
            trainer.Step();
            Sync();
            stepMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }

        // The same work phase by phase, synchronised after each, to see where the time goes.
        var phases = new List<double>[4];
        for (int k = 0; k < 4; k++) phases[k] = new List<double>();
        var parameters = model.parameters().Where(p => p.requires_grad).ToList();
        for (int i = 0; i < steps; i++)
        {
            using var b = loader.Next();
            using var scope = NewDisposeScope();
            Sync();
            long t = Stopwatch.GetTimestamp();
            var loss = model.Loss(b.InputIds, b.Labels);
            Sync();
            phases[0].Add(Lap(ref t));
            loss.backward();
            Sync();
            phases[1].Add(Lap(ref t));
            if (trainer.Optimizer is FlatAdamW flat) flat.ClipGradNorm(1.0); // as Trainer.Step does
            else nn.utils.clip_grad_norm_(parameters, 1.0);
            Sync();
            phases[2].Add(Lap(ref t));
            trainer.Optimizer.step();
            trainer.Optimizer.zero_grad();
            Sync();
            phases[3].Add(Lap(ref t));
        }
        return (stepMs, phases.Select(Median).ToArray());
    }

    // Kernels run asynchronously: time only finished work.
    static void Sync()
    {
        if (cuda.is_available()) cuda.synchronize();
    }

    static double Lap(ref long t)
    {
        long now = Stopwatch.GetTimestamp();
        double ms = Stopwatch.GetElapsedTime(t, now).TotalMilliseconds;
        t = now;
        return ms;
    }

    // ------------------------------------------------------------------ scaling

    static BenchReport RunScaling(string[] args)
    {
        var options = new LaunchOptions
        {
            NProcPerNode = IntArg(args, "--nproc-per-node", 1),
            NNodes = IntArg(args, "--nnodes", 1),
            NodeRank = IntArg(args, "--node-rank", 0),
            MasterAddr = Arg(args, "--master-addr"),
            MasterPort = Arg(args, "--master-port") is { } port ? int.Parse(port, CultureInfo.InvariantCulture) : null,
            Backend = DistributedBackend.Auto,
            Precision = Arg(args, "--precision") ?? "bf16-mixed",
            Threads = IntArg(args, "--threads", 2),
        };
        string outFile = Arg(args, "--out") ?? throw new ArgumentException("--scaling needs --out file.json");
        int batch = IntArg(args, "--batch", 8), sequence = IntArg(args, "--sequence", 1024), steps = IntArg(args, "--steps", 15);
        var config = CudaConfig(Arg(args, "--config") ?? "350M") with { MaxPositionEmbeddings = Math.Max(sequence, 16) };
        int code = TrainerHost.Run(options, (ctx, _) =>
        {
            using var model = LlamaModel.Create(config, ctx.Device, seed: 1);
            var loader = RandomTokens(config, batch, sequence, CudaWarmup + steps, ctx.Device, ctx.Rank, ctx.WorldSize);
            using var trainer = new Trainer(model, loader, new TrainerOptions { LearningRate = 1e-4, WarmupSteps = 2, TotalSteps = 1000 });
            var losses = new List<double>();
            for (int i = 0; i < CudaWarmup; i++) losses.Add(trainer.Step().Loss);
            var stepMs = new List<double>();
            for (int i = 0; i < steps; i++)
            {
                long t0 = Stopwatch.GetTimestamp();
                losses.Add(trainer.Step().Loss); // loss.item() synchronises
                stepMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
            var all = ctx.AllGatherObject(losses.ToArray());
            var slowest = ctx.AllGatherObject(Median(stepMs));
            if (ctx.IsMainRank)
            {
                double ms = slowest.Max();
                var row = new JsonObject
                {
                    ["gpus"] = ctx.WorldSize,
                    ["nodes"] = options.NNodes,
                    ["tok_s"] = Math.Round((double)ctx.WorldSize * batch * sequence / ms * 1000),
                    ["step_ms"] = Math.Round(ms, 2),
                    ["precision"] = ctx.Precision.Name,
                    ["batch_per_gpu"] = batch,
                    ["sequence"] = sequence,
                    ["steps"] = steps,
                    ["losses_by_rank"] = JsonSerializer.SerializeToNode(all),
                };
                File.WriteAllText(outFile, row.ToJsonString());
            }
            return Task.CompletedTask;
        });
        Environment.Exit(code);
        return null!;
    }
}
