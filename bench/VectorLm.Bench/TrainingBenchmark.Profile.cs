using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using VectorLm.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace VectorLm.Bench;

/// <summary>
/// <c>training --profile [config] [--reps N] [--variants a,b|none]</c>: where a CPU training step of
/// <see cref="LlamaModel"/> goes (forward with loss, backward, clip + AdamW + zero_grad; wall time, process CPU time and
/// page faults), next to hand-written functional forwards over the same parameters that differ in one op group each
/// (attention kernel, GQA expansion, RMSNorm, RoPE, fused projections, loss blocks). TorchSharp has no autograd
/// profiler, so op groups are timed by ablation: the sides run one after another in every repetition, and the report
/// gives medians. <c>training --profile --ops</c>: each op group alone at the config's shapes, in CPU time.
/// </summary>
public sealed partial class TrainingBenchmark
{
    /// <summary>One way of writing the forward: which kernel or formulation each op group uses.</summary>
    sealed record Variant(string Name, string Attention = "sdpa", string Gqa = "repeat_interleave", string Norm = "cast", string Rope = "cat",
        int LossChunkRows = 0, bool FuseQkv = false, bool FuseGateUp = false);

    static readonly Variant[] Variants =
    [
        new("functional"),                                         // LlamaModel's math, loss over the whole batch's logits
        new("explicit-attn", Attention: "explicit"),                // matmul + additive mask + softmax + matmul
        new("explicit-attn-grouped", Attention: "explicit", Gqa: "broadcast"), // no k/v copy: query heads grouped per kv head
        new("gqa-expand", Gqa: "expand"),                           // expand + reshape instead of repeat_interleave
        new("norm-nocast", Norm: "plain"),                          // no dtype branches in RMSNorm
        new("rope-signed", Rope: "signed"),                         // sin table with the first half negated: no neg
        new("rope-addcmul", Rope: "addcmul"),                       // signed sin and one addcmul
        new("loss-chunk-256", LossChunkRows: 256),                  // head + cross-entropy over row blocks (8 MiB of logits each)
        new("loss-chunk-128", LossChunkRows: 128),
        new("loss-chunk-64", LossChunkRows: 64),
        new("fuse-qkv", FuseQkv: true),                             // one matmul for q, k, v
        new("fuse-gate-up", FuseGateUp: true),                      // one matmul for gate and up
    ];

    static BenchReport RunProfile(string[] args, Device device)
    {
        if (args.Contains("--ops")) return RunOps(args, device);
        int reps = IntArg(args, "--reps", 12);
        string configName = args.FirstOrDefault(a => Configs.Any(c => c.Name == a)) ?? "10M";
        var config = Configs.First(c => c.Name == configName).Config;
        var chosen = Arg(args, "--variants") is { } list ? list.Split(',').ToHashSet() : null;
        var variants = Variants.Where(v => chosen is null || chosen.Contains(v.Name)).ToList();
        string loadAtStart = BenchReport.LoadAverage();

        using var model = LlamaModel.Create(config, device, seed: 1);
        model.train();
        var parameters = model.parameters().ToList();
        var named = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        // A tiny learning rate: the weights stay where they are, so every variant times the same numbers.
        using var optimizer = optim.AdamW(parameters, lr: 1e-7, weight_decay: 0.1);
        var gen = new Generator(7);
        using var inputs = randint(0, config.VocabSize, [Batch, Sequence], dtype: ScalarType.Int64, generator: gen).to(device);
        using var labels = randint(0, config.VocabSize, [Batch, Sequence], dtype: ScalarType.Int64, generator: gen).to(device);
        using var reference = new FunctionalLlama(config, named, Sequence, device);

        // Every variant must compute the model's loss (f32: within 1e-5) before its time means anything.
        using (no_grad())
        {
            using var expected = model.Loss(inputs, labels);
            foreach (var v in variants)
            {
                using var got = reference.Loss(inputs, labels, v);
                double diff = Math.Abs(got.item<float>() - expected.item<float>());
                if (diff > 1e-5) throw new InvalidOperationException($"variant {v.Name}: loss differs from LlamaModel.Loss by {diff}");
            }
        }

        var sides = new List<(string Name, Func<Tensor> Loss)> { ("LlamaModel", () => model.Loss(inputs, labels)) };
        sides.AddRange(variants.Select(v => (v.Name, (Func<Tensor>)(() => reference.Loss(inputs, labels, v)))));
        // Per side: wall ms of forward, backward, rest; CPU ms (user + system) of the same; system ms of the step; minor faults.
        var times = sides.Select(_ => Enumerable.Range(0, 8).Select(_ => new List<double>()).ToArray()).ToArray();
        for (int rep = -WarmupSteps; rep < reps; rep++)
        {
            // Rotate the starting side each repetition so load drift hits every side alike.
            for (int j = 0; j < sides.Count; j++)
            {
                int s = (j + Math.Max(rep, 0)) % sides.Count;
                long faults0 = MinorFaults();
                var marks = new List<(long Wall, double User, double Sys)>();
                void Mark() { var (u, sy) = CpuTimes(); marks.Add((Stopwatch.GetTimestamp(), u, sy)); }
                using var scope = NewDisposeScope();
                Mark();
                var loss = sides[s].Loss();
                Mark();
                loss.backward();
                Mark();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.step();
                optimizer.zero_grad();
                _ = loss.item<float>();
                Mark();
                if (rep < 0) continue;
                for (int k = 0; k < 3; k++)
                {
                    times[s][k].Add(Stopwatch.GetElapsedTime(marks[k].Wall, marks[k + 1].Wall).TotalMilliseconds);
                    times[s][3 + k].Add(marks[k + 1].User + marks[k + 1].Sys - marks[k].User - marks[k].Sys);
                }
                times[s][6].Add(marks[3].Sys - marks[0].Sys);
                times[s][7].Add(MinorFaults() - faults0);
            }
        }

        var report = new BenchReport("training-profile", loadAtStart);
        for (int s = 0; s < sides.Count; s++)
        {
            var m = times[s].Select(x => Math.Round(Median(x), 1)).ToArray();
            report.Add(("side", sides[s].Name), ("forward_ms", m[0]), ("backward_ms", m[1]), ("optimizer_ms", m[2]),
                ("step_ms", Math.Round(m[0] + m[1] + m[2], 1)),
                ("forward_cpu_ms", m[3]), ("backward_cpu_ms", m[4]), ("optimizer_cpu_ms", m[5]),
                ("step_cpu_ms", Math.Round(m[3] + m[4] + m[5], 1)), ("step_sys_ms", m[6]), ("minor_faults", m[7]), ("reps", times[s][0].Count));
        }
        report.Extra["command"] = "dotnet run -c Release --project bench/VectorLm.Bench -- training " + string.Join(' ', args);
        report.Extra["config"] = configName;
        report.Extra["batch"] = Batch;
        report.Extra["sequence"] = Sequence;
        report.Extra["threads"] = Threads;
        report.Notes.Add("medians per phase, wall and process CPU time (user + system, all threads); sides alternate within each repetition; optimizer = clip_grad_norm_ + AdamW + zero_grad + loss.item()");
        report.Notes.Add("functional variants: the same parameters, the loss checked against LlamaModel.Loss within 1e-5 before timing");
        return report;
    }

    /// <summary>
    /// <c>training --profile --ops</c>: forward + backward of each op group alone at the shapes of one layer of the
    /// config, times how often a step runs it, so the groups' shares of a step can be read off.
    /// </summary>
    static BenchReport RunOps(string[] args, Device device)
    {
        int reps = IntArg(args, "--reps", 20);
        string configName = args.FirstOrDefault(a => Configs.Any(c => c.Name == a)) ?? "10M";
        var c = Configs.First(x => x.Name == configName).Config;
        string loadAtStart = BenchReport.LoadAverage();
        long b = Batch, t = Sequence, d = c.HiddenSize, hd = c.HeadDim, h = c.NumAttentionHeads, kv = c.NumKeyValueHeads, ff = c.IntermediateSize;
        int layers = c.NumHiddenLayers;
        Tensor Leaf(params long[] shape) => (randn(shape, device: device) * 0.02).requires_grad_(true).MoveToOuterDisposeScope();
        using var keep = NewDisposeScope();
        var x = Leaf(b, t, d);
        var xf = Leaf(b, t, ff);
        var wq = Leaf(h * hd, d); var wk = Leaf(kv * hd, d); var wff = Leaf(ff, d); var wdown = Leaf(d, ff); var whead = Leaf(c.VocabSize, d);
        var q = Leaf(b, h, t, hd); var k = Leaf(b, h, t, hd); var kvk = Leaf(b, kv, t, hd);
        var wnorm = Leaf(d);
        var emb = Leaf(c.VocabSize, d);
        var gen = new Generator(7);
        var ids = randint(0, c.VocabSize, [b, t], dtype: ScalarType.Int64, generator: gen).to(device);
        var logitsLeaf = Leaf(b * t, c.VocabSize);
        var cosT = randn(t, hd, device: device);
        var causalMask = ones(t, t, dtype: ScalarType.Bool, device: device).tril();
        var upper = causalMask.logical_not();
        double scale = 1.0 / Math.Sqrt(hd);
        var ops = new (string Name, int PerStep, double Flops, Func<Tensor> Run)[]
        {
            ("linear q/o (256->256)", 2 * layers, 2.0 * b * t * d * h * hd, () => F.linear(x, wq)),
            ("linear k/v (256->128)", 2 * layers, 2.0 * b * t * d * kv * hd, () => F.linear(x, wk)),
            ("linear gate/up (256->768)", 2 * layers, 2.0 * b * t * d * ff, () => F.linear(x, wff)),
            ("linear down (768->256)", layers, 2.0 * b * t * d * ff, () => F.linear(xf, wdown)),
            ("lm_head (256->8192)", 1, 2.0 * b * t * d * c.VocabSize, () => F.linear(x, whead)),
            ("sdpa causal", layers, 2.0 * b * h * t * t * hd, () => F.scaled_dot_product_attention(q, k, k, is_casual: true)),
            ("gqa repeat_interleave k+v", 2 * layers, 0, () => kvk.repeat_interleave(h / kv, dim: 1)),
            ("rope q+k (cat)", 2 * layers, 0, () => { var hv = q.chunk(2, -1); return q * cosT + cat([-hv[1], hv[0]], -1) * cosT; }),
            ("rmsnorm", 2 * layers + 1, 0, () => wnorm * (x * (x.pow(2).mean([-1L], keepdim: true) + 1e-5).rsqrt())),
            ("silu*up", layers, 0, () => F.silu(xf) * xf),
            ("residual add", 2 * layers, 0, () => x + x),
            ("attn out transpose+reshape", layers, 0, () => q.transpose(1, 2).reshape(b, t, h * hd) * 1.0),
            ("embedding", 1, 0, () => emb.index_select(0, ids.view(-1))),
            ("cross_entropy 1024x8192", 1, 0, () => F.cross_entropy(logitsLeaf, ids.view(-1))),
            // Alternatives, not counted in a step (per_step 0).
            ("alt: lm_head as 2-D mm", 0, 2.0 * b * t * d * c.VocabSize, () => x.view(b * t, d).mm(whead.t())),
            ("alt: lm_head 4 row chunks", 0, 2.0 * b * t * d * c.VocabSize, () => cat(x.view(b * t, d).chunk(4, 0).Select(r => F.linear(r, whead)).ToArray(), 0)),
            ("alt: sdpa not causal", 0, 2.0 * b * h * t * t * hd, () => F.scaled_dot_product_attention(q, k, k)),
            ("alt: sdpa bool mask", 0, 2.0 * b * h * t * t * hd, () => F.scaled_dot_product_attention(q, k, k, attn_mask: causalMask)),
            ("alt: explicit attention", 0, 2.0 * b * h * t * t * hd, () => q.matmul(k.transpose(-2, -1)).mul(scale).masked_fill(upper, double.NegativeInfinity).softmax(-1).matmul(k)),
            ("alt: log_softmax 1024x8192", 0, 0, () => logitsLeaf.log_softmax(-1)),
            ("alt: exp 1024x8192", 0, 0, () => logitsLeaf.exp()),
            ("alt: rope signed sin + addcmul", 0, 0, () => { var hv = q.chunk(2, -1); return (q * cosT).addcmul_(cat([hv[1], hv[0]], -1), cosT, 1); }),
            ("alt: rmsnorm via vector norm", 0, 0, () => wnorm * (x * (x.norm(-1, keepdim: true).square() / d + 1e-5).rsqrt())),
            // The loss path whole (as a plain loop writes it) and in LlamaModel.Loss's CPU blocks of 4 MiB of logits.
            ("alt: head + CE, whole batch", 0, 0, () => F.cross_entropy(F.linear(x, whead).view(-1, c.VocabSize), ids.view(-1))),
            ("alt: head + CE, 4 MiB blocks", 0, 0, () =>
            {
                long rowsPerBlock = LlamaModel.CpuLossBlockBytes / (4L * c.VocabSize);
                var targets = ids.view(-1).split(rowsPerBlock);
                var blocks = x.view(b * t, d).split(rowsPerBlock);
                var sum = F.cross_entropy(F.linear(blocks[0], whead), targets[0], reduction: nn.Reduction.Sum);
                for (int j = 1; j < blocks.Length; j++) sum = sum + F.cross_entropy(F.linear(blocks[j], whead), targets[j], reduction: nn.Reduction.Sum);
                return sum / (b * t);
            }),
        };
        var fwd = ops.Select(_ => new List<double>()).ToArray();
        var bwd = ops.Select(_ => new List<double>()).ToArray();
        var faults = ops.Select(_ => new List<double>()).ToArray();
        for (int rep = -3; rep < reps; rep++)
        {
            for (int i = 0; i < ops.Length; i++)
            {
                using var scope = NewDisposeScope();
                long faults0 = MinorFaults();
                var (u0, s0) = CpuTimes();
                var y = ops[i].Run();
                var (u1, s1) = CpuTimes();
                using var grad = ones_like(y);
                var (u2, s2) = CpuTimes();
                y.backward([grad]);
                var (u3, s3) = CpuTimes();
                if (rep >= 0) { fwd[i].Add(u1 + s1 - u0 - s0); bwd[i].Add(u3 + s3 - u2 - s2); faults[i].Add(MinorFaults() - faults0); }
                foreach (var leaf in new[] { x, xf, wq, wk, wff, wdown, whead, q, k, kvk, wnorm, emb, logitsLeaf }) leaf.grad?.zero_();
            }
        }
        var report = new BenchReport("training-profile-ops", loadAtStart);
        double total = 0;
        for (int i = 0; i < ops.Length; i++)
        {
            double f = Median(fwd[i]), bw = Median(bwd[i]), per = (f + bw) * ops[i].PerStep;
            total += per;
            report.Add(("op", ops[i].Name), ("forward_cpu_ms", Math.Round(f, 2)), ("backward_cpu_ms", Math.Round(bw, 2)), ("per_step", ops[i].PerStep),
                ("step_share_cpu_ms", Math.Round(per, 1)), ("fwd_gflop_per_cpu_s", ops[i].Flops > 0 ? Math.Round(ops[i].Flops / f / 1e6, 1) : null),
                ("bwd_gflop_per_cpu_s", ops[i].Flops > 0 ? Math.Round(2 * ops[i].Flops / bw / 1e6, 1) : null),
                ("minor_faults", Median(faults[i])));
        }
        report.Extra["sum_of_shares_cpu_ms"] = Math.Round(total, 1);
        report.Extra["command"] = "dotnet run -c Release --project bench/VectorLm.Bench -- training " + string.Join(' ', args);
        report.Notes.Add("each op alone on leaves that require grad; backward with a ones gradient; medians of process CPU time (user + system, all threads: steadier than wall time on a shared machine); step_share = (forward + backward) x per_step");
        return report;
    }

    // Minor page faults of this process so far (/proc/self/stat field 10): fresh pages the kernel had to map and zero.
    static long MinorFaults()
    {
        if (!File.Exists("/proc/self/stat")) return 0;
        string stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
    }

    // User and system CPU time of the whole process in ms (getrusage): steadier than wall time on a loaded machine.
    static unsafe (double User, double Sys) CpuTimes()
    {
        long* usage = stackalloc long[18]; // struct rusage: ru_utime, ru_stime (timeval each), 14 longs
        if (!OperatingSystem.IsLinux() || GetRusage(0, usage) != 0) return (0, 0);
        return (usage[0] * 1e3 + usage[1] / 1e3, usage[2] * 1e3 + usage[3] / 1e3);
    }

    [LibraryImport("libc", EntryPoint = "getrusage")]
    private static unsafe partial int GetRusage(int who, long* usage);

    /// <summary>The Llama forward written as plain tensor code over <see cref="LlamaModel"/>'s parameters, one op group switchable.</summary>
    sealed class FunctionalLlama : IDisposable
    {
        readonly LlamaConfig _c;
        readonly Dictionary<string, Tensor> _p;
        readonly Tensor _cos, _sin, _signedSin, _mask;

        public FunctionalLlama(LlamaConfig config, Dictionary<string, Tensor> parameters, int sequence, Device device)
        {
            _c = config;
            _p = parameters;
            using var scope = NewDisposeScope();
            using var invFreq = tensor(config.RopeInverseFrequencies()).to(ScalarType.Float64);
            using var positions = arange(0, sequence, dtype: ScalarType.Float64);
            using var freqs = outer(positions, invFreq);
            using var emb = cat([freqs, freqs], -1);
            _cos = emb.cos().to(ScalarType.Float32).to(device).MoveToOuterDisposeScope();
            _sin = emb.sin().to(ScalarType.Float32).to(device).MoveToOuterDisposeScope();
            using var sign = cat([full(config.HeadDim / 2, -1f), ones(config.HeadDim / 2)]).to(device);
            _signedSin = (_sin * sign).MoveToOuterDisposeScope();
            _mask = ones(sequence, sequence, dtype: ScalarType.Bool, device: device).triu(1)
                .logical_not().MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            _cos.Dispose();
            _sin.Dispose();
            _signedSin.Dispose();
            _mask.Dispose();
        }

        Tensor Norm(Tensor x, string weight, Variant v)
        {
            var w = _p[weight];
            if (v.Norm == "plain") return w * (x * (x.pow(2).mean([-1L], keepdim: true) + _c.RmsNormEps).rsqrt());
            var x32 = x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);
            var normed = x32 * (x32.pow(2).mean([-1L], keepdim: true) + _c.RmsNormEps).rsqrt();
            return w * normed.to(x.dtype);
        }

        Tensor Rope(Tensor x, Variant v)
        {
            var halves = x.chunk(2, -1);
            if (v.Rope == "signed") return x * _cos + cat([halves[1], halves[0]], -1) * _signedSin;
            if (v.Rope == "addcmul") return (x * _cos).addcmul_(cat([halves[1], halves[0]], -1), _signedSin, 1);
            return x * _cos + cat([-halves[1], halves[0]], -1) * _sin;
        }

        Tensor Attention(Tensor x, string prefix, Variant v)
        {
            long b = x.shape[0], t = x.shape[1];
            int h = _c.NumAttentionHeads, kv = _c.NumKeyValueHeads, d = _c.HeadDim, g = h / kv;
            Tensor q, k, val;
            if (v.FuseQkv)
            {
                var qkv = F.linear(x, cat([_p[prefix + "q_proj.weight"], _p[prefix + "k_proj.weight"], _p[prefix + "v_proj.weight"]], 0));
                var parts = qkv.split([h * d, kv * d, kv * d], -1);
                q = parts[0].view(b, t, h, d).transpose(1, 2);
                k = parts[1].view(b, t, kv, d).transpose(1, 2);
                val = parts[2].view(b, t, kv, d).transpose(1, 2);
            }
            else
            {
                q = F.linear(x, _p[prefix + "q_proj.weight"]).view(b, t, h, d).transpose(1, 2);
                k = F.linear(x, _p[prefix + "k_proj.weight"]).view(b, t, kv, d).transpose(1, 2);
                val = F.linear(x, _p[prefix + "v_proj.weight"]).view(b, t, kv, d).transpose(1, 2);
            }
            q = Rope(q, v);
            k = Rope(k, v);
            Tensor o;
            if (v.Gqa == "broadcast")
            {
                // [b, kv, g, t, d] queries against [b, kv, 1, t, d] keys: the matmul broadcasts, nothing is copied.
                var qg = q.view(b, kv, g, t, d);
                var scores = qg.matmul(k.unsqueeze(2).transpose(-2, -1)) * (1.0 / Math.Sqrt(d));
                var probs = scores.masked_fill(_mask.logical_not(), double.NegativeInfinity).softmax(-1);
                o = probs.matmul(val.unsqueeze(2)).view(b, h, t, d);
            }
            else
            {
                if (g > 1)
                {
                    if (v.Gqa == "expand")
                    {
                        k = k.unsqueeze(2).expand(b, kv, g, t, d).reshape(b, h, t, d);
                        val = val.unsqueeze(2).expand(b, kv, g, t, d).reshape(b, h, t, d);
                    }
                    else
                    {
                        k = k.repeat_interleave(g, dim: 1);
                        val = val.repeat_interleave(g, dim: 1);
                    }
                }
                if (v.Attention == "explicit")
                {
                    var scores = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(d));
                    var probs = scores.masked_fill(_mask.logical_not(), double.NegativeInfinity).softmax(-1);
                    o = probs.matmul(val);
                }
                else o = F.scaled_dot_product_attention(q, k, val, is_casual: true);
            }
            return F.linear(o.transpose(1, 2).reshape(b, t, h * d), _p[prefix + "o_proj.weight"]);
        }

        Tensor Mlp(Tensor x, string prefix, Variant v)
        {
            if (v.FuseGateUp)
            {
                var gu = F.linear(x, cat([_p[prefix + "gate_proj.weight"], _p[prefix + "up_proj.weight"]], 0)).chunk(2, -1);
                return F.linear(F.silu(gu[0]) * gu[1], _p[prefix + "down_proj.weight"]);
            }
            return F.linear(F.silu(F.linear(x, _p[prefix + "gate_proj.weight"])) * F.linear(x, _p[prefix + "up_proj.weight"]), _p[prefix + "down_proj.weight"]);
        }

        public Tensor Loss(Tensor inputs, Tensor labels, Variant v)
        {
            var h = _p["model.embed_tokens.weight"].index_select(0, inputs.view(-1)).view(inputs.shape[0], inputs.shape[1], -1);
            for (int i = 0; i < _c.NumHiddenLayers; i++)
            {
                string prefix = $"model.layers.{i}.";
                h = h + Attention(Norm(h, prefix + "input_layernorm.weight", v), prefix + "self_attn.", v);
                h = h + Mlp(Norm(h, prefix + "post_attention_layernorm.weight", v), prefix + "mlp.", v);
            }
            h = Norm(h, "model.norm.weight", v);
            var headWeight = _p.TryGetValue("lm_head.weight", out var head) ? head : _p["model.embed_tokens.weight"];
            if (v.LossChunkRows == 0)
                return F.cross_entropy(F.linear(h, headWeight).view(-1, _c.VocabSize), labels.view(-1), ignore_index: -100);
            var rows = h.view(-1, _c.HiddenSize).split(v.LossChunkRows);
            var targets = labels.view(-1).split(v.LossChunkRows);
            Tensor? sum = null;
            for (int i = 0; i < rows.Length; i++)
            {
                var part = F.cross_entropy(F.linear(rows[i], headWeight), targets[i], ignore_index: -100, reduction: nn.Reduction.Sum);
                sum = sum is null ? part : sum + part;
            }
            return sum! / labels.ne(-100).sum();
        }
    }
}
