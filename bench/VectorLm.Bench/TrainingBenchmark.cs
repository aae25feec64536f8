using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Training;
using VectorLm.Native;
using static TorchSharp.torch;

namespace VectorLm.Bench;

/// <summary>
/// Training-step time of the SDK's <see cref="Trainer"/> (data loader, schedule, decay groups, clipping) against a
/// plain TorchSharp loop over the same model (forward, cross-entropy, backward, clip, AdamW, zero_grad), measured
/// side by side in one process, interleaved, on 2 threads, batch 8 x 128.
/// </summary>
public sealed partial class TrainingBenchmark : IBenchmark
{
    public string Name => "training";
    public string Description => "training step time and tokens/s: SDK Trainer vs plain TorchSharp loop (tiny, ~10M, ~50M); --profile: CPU step by phase and op-group variants; --device cuda: per precision vs PyTorch, --scaling";

    const int Batch = 8, Sequence = 128, Threads = 2;
    // The first steps of a fresh model run up to 3x slower (allocator and kernel warm-up, seen here): keep them out.
    const int WarmupSteps = 5;

    static readonly (string Name, LlamaConfig Config, int StepsEach)[] Configs =
    [
        ("tiny", LlamaConfig.Tiny, 40),
        ("10M", new LlamaConfig
        {
            VocabSize = 8192, HiddenSize = 256, NumHiddenLayers = 8, NumAttentionHeads = 8, NumKeyValueHeads = 4,
            IntermediateSize = 768, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5,
        }, 16),
        ("50M", new LlamaConfig
        {
            VocabSize = 8192, HiddenSize = 512, NumHiddenLayers = 12, NumAttentionHeads = 8, NumKeyValueHeads = 4,
            IntermediateSize = 1536, MaxPositionEmbeddings = 256, RmsNormEps = 1e-5,
        }, 8),
    ];

    public BenchReport Run(string[] args)
    {
        // libgomp's spin-waiting threads stall badly when the 2 cores are shared; it reads the policy from the native
        // environment when libtorch loads, so this must precede the first torch call (--omp-active keeps the default).
        bool passive = !args.Contains("--omp-active");
        if (passive) NativeEnvironment.Set("OMP_WAIT_POLICY", "PASSIVE", overwrite: true);
        set_num_threads(Threads);
        // --device cuda: the same comparison on the GPU (results in training-cuda.json, beside the CPU ones).
        int deviceAt = Array.IndexOf(args, "--device");
        var device = deviceAt >= 0 && deviceAt + 1 < args.Length ? torch.device(args[deviceAt + 1]) : CPU;
        if (args.Contains("--scaling")) return RunScaling(args);
        if (args.Contains("--profile")) return RunProfile(args, device);
        if (device.type == DeviceType.CUDA || args.Contains("--precisions")) return RunCuda(args, device);
        var report = new BenchReport(device.type == DeviceType.CPU ? Name : $"{Name}-{device.type.ToString().ToLowerInvariant()}");
        var only = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && !(i > 0 && args[i - 1] == "--device"))
            .ToHashSet(); // e.g. "tiny 10M"
        foreach (var (name, config, stepsEach) in Configs)
        {
            if (only.Count > 0 && !only.Contains(name)) continue;
            var (plainMs, sdkMs, plainCpuMs, sdkCpuMs, parameters) = Measure(config, stepsEach, device);
            double plain = Median(plainMs), sdk = Median(sdkMs);
            long tokens = Batch * Sequence;
            report.Add(
                ("config", name),
                ("params_M", Math.Round(parameters / 1e6, 2)),
                ("plain_ms", Math.Round(plain, 2)),
                ("sdk_ms", Math.Round(sdk, 2)),
                ("ratio", Math.Round(sdk / plain, 3)),
                ("plain_tok_s", Math.Round(tokens / plain * 1000)),
                ("sdk_tok_s", Math.Round(tokens / sdk * 1000)),
                ("plain_cpu_ms", Math.Round(Median(plainCpuMs), 1)),
                ("sdk_cpu_ms", Math.Round(Median(sdkCpuMs), 1)),
                ("steps_each", plainMs.Count));
            Console.Error.WriteLine($"{name}: plain {plain:F1} ms, sdk {sdk:F1} ms, ratio {sdk / plain:F3}");
        }
        report.Extra["batch"] = Batch;
        report.Extra["sequence"] = Sequence;
        report.Extra["threads"] = Threads;
        report.Extra["device"] = device.ToString();
        report.Extra["omp_wait_policy"] = passive ? "PASSIVE" : "default";
        report.Notes.Add($"median step time; {Threads} torch threads; batch {Batch}x{Sequence}; plain and SDK steps alternate one by one after {WarmupSteps} warm-up steps each; ratio = sdk / plain (goal <= 1.05)");
        report.Notes.Add("plain_cpu_ms/sdk_cpu_ms: median process CPU time (user + system, all threads) of the same steps, steadier than wall time when other jobs share the cores");
        report.Notes.Add("both loops train the same LlamaModel; the SDK side adds ShardedDataLoader batches, the cosine schedule, decay/no-decay groups and step metrics");
        report.Notes.Add("the plain step takes the loss as a plain TorchSharp user writes it (forward, then cross_entropy over the whole batch's logits); the SDK's LlamaModel.Loss computes the same mean over 4 MiB row blocks on the CPU (see training --profile)");
        return report;
    }

    static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    static (List<double> Plain, List<double> Sdk, List<double> PlainCpu, List<double> SdkCpu, long Parameters) Measure(LlamaConfig config, int stepsEach, Device device)
    {
        // Plain TorchSharp: one fixed random batch, one AdamW over all parameters.
        using var plainModel = LlamaModel.Create(config, device, seed: 1);
        plainModel.train();
        var plainParams = plainModel.parameters().ToList();
        using var plainOpt = optim.AdamW(plainParams, lr: 1e-3, weight_decay: 0.1);
        var gen = new Generator(7);
        using var inputs = randint(0, config.VocabSize, [Batch, Sequence], dtype: ScalarType.Int64, generator: gen).to(device);
        using var labels = randint(0, config.VocabSize, [Batch, Sequence], dtype: ScalarType.Int64, generator: gen).to(device);

        void PlainStep()
        {
            using var scope = NewDisposeScope();
            var logits = plainModel.forward(inputs);
            var loss = nn.functional.cross_entropy(logits.view(-1, config.VocabSize), labels.view(-1), ignore_index: -100);
            loss.backward();
            nn.utils.clip_grad_norm_(plainParams, 1.0);
            plainOpt.step();
            plainOpt.zero_grad();
            _ = loss.item<float>();
        }

        // SDK: the Trainer over a packed dataset of random tokens, sharded loader, schedule, groups.
        using var sdkModel = LlamaModel.Create(config, device, seed: 1);
        var rng = new Random(3);
        var tokens = Enumerable.Range(0, Batch * Sequence * 16 + 1).Select(_ => rng.Next(config.VocabSize)).ToList();
        var loader = new ShardedDataLoader(PackedDataset.FromTokenIds(tokens, Sequence), Batch, seed: 0, device: device);
        using var trainer = new Trainer(sdkModel, loader, new TrainerOptions { LearningRate = 1e-3, WarmupSteps = 2, TotalSteps = 1000 });

        for (int i = 0; i < WarmupSteps; i++) { PlainStep(); trainer.Step(); }
        var plain = new List<double>();
        var sdk = new List<double>();
        var plainCpu = new List<double>();
        var sdkCpu = new List<double>();
        for (int i = 0; i < stepsEach; i++)
        {
            // Alternate step by step, flipping which goes first, so drift in machine load hits both sides alike.
            for (int side = 0; side < 2; side++)
            {
                bool plainSide = (side == 0) == (i % 2 == 0);
                var (user0, sys0) = CpuTimes();
                double cpu0 = user0 + sys0;
                long t0 = Stopwatch.GetTimestamp();
                if (plainSide) PlainStep(); else trainer.Step();
                (plainSide ? plain : sdk).Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                var (user, sys) = CpuTimes();
                (plainSide ? plainCpu : sdkCpu).Add(user + sys - cpu0);
            }
        }
        return (plain, sdk, plainCpu, sdkCpu, plainParams.Sum(p => p.numel()));
    }
}
