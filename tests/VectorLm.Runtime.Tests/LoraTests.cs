using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using VectorLm.Data;
using VectorLm.Models;
using VectorLm.Tokenization;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

public class LoraTests
{
    static readonly LlamaConfig Small = LlamaConfig.Tiny with { TieWordEmbeddings = false, MaxPositionEmbeddings = 32 };
    const string Prefix = "base_model.model.";

    static Tensor Ids(int seed = 3)
    {
        var g = new Generator((ulong)seed);
        return randint(0, Small.VocabSize, [2, 12], generator: g);
    }

    static Dictionary<string, Tensor> Snapshot(LlamaModel m) =>
        m.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    static byte[] Bytes(Tensor t) => t.detach().cpu().contiguous().bytes.ToArray();

    // The base weight of each projection, [out, in], by PEFT module name (model.layers.0.self_attn.q_proj).
    static Dictionary<string, Tensor> BaseWeights(LlamaModel m) => m.named_parameters()
        .Where(p => p.name.EndsWith("_proj.weight", StringComparison.Ordinal))
        .ToDictionary(p => p.name[..^".weight".Length], p => (Tensor)p.parameter);

    /// <summary>
    /// A PEFT adapter folder written by hand (not by SaveAdapter): the names, shapes and JSON PEFT writes, with
    /// random non-zero A and B so the update is large against the tolerances.
    /// </summary>
    static void WritePeftFolder(string folder, LlamaModel m, int r, double alpha, string[] targets, bool rsLora, int seed = 11,
        Action<JsonObject>? editConfig = null, Func<string, long[], long[]>? editShape = null)
    {
        Directory.CreateDirectory(folder);
        var g = new Generator((ulong)seed);
        var tensors = new List<(string, Tensor)>();
        foreach (var (module, w) in BaseWeights(m))
        {
            if (!targets.Any(t => module.EndsWith("." + t, StringComparison.Ordinal))) continue;
            string a = Prefix + module + ".lora_A.weight", b = Prefix + module + ".lora_B.weight";
            long[] aShape = editShape?.Invoke(a, [r, w.shape[1]]) ?? [r, w.shape[1]];
            long[] bShape = editShape?.Invoke(b, [w.shape[0], r]) ?? [w.shape[0], r];
            tensors.Add((a, randn(aShape, generator: g) * 0.2));
            tensors.Add((b, randn(bShape, generator: g) * 0.2));
        }
        SafetensorsFile.Save(Path.Combine(folder, "adapter_model.safetensors"), tensors);
        var config = new JsonObject
        {
            ["peft_type"] = "LORA", ["task_type"] = "CAUSAL_LM", ["r"] = r, ["lora_alpha"] = alpha, ["lora_dropout"] = 0.05,
            ["target_modules"] = new JsonArray(targets.Select(t => (JsonNode)t).ToArray()), ["bias"] = "none",
            ["use_rslora"] = rsLora, ["use_dora"] = false, ["modules_to_save"] = null, ["fan_in_fan_out"] = false,
            ["rank_pattern"] = new JsonObject(), ["alpha_pattern"] = new JsonObject(), ["layers_to_transform"] = null,
            ["init_lora_weights"] = true, ["inference_mode"] = true, ["base_model_name_or_path"] = null,
        };
        editConfig?.Invoke(config);
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), config.ToJsonString());
    }

    [Fact]
    public void AddLora_adds_peft_named_adapters_freezes_the_base_and_leaves_the_output_unchanged()
    {
        using var m = LlamaModel.Create(Small, seed: 1);
        using var ids = Ids();
        using var before = m.forward(ids).detach();
        var baseNames = m.named_parameters().Select(p => p.name).ToList();
        m.AddLora(new LoraConfig { R = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj", "down_proj"] });

        var names = m.named_parameters().Select(p => p.name).ToList();
        var added = names.Except(baseNames).Order().ToList();
        var expected = Enumerable.Range(0, 2).SelectMany(i => new[] { $"model.layers.{i}.self_attn.q_proj", $"model.layers.{i}.self_attn.v_proj", $"model.layers.{i}.mlp.down_proj" })
            .SelectMany(n => new[] { n + ".lora_A.weight", n + ".lora_B.weight" }).Order().ToList();
        Assert.Equal(expected, added);
        Assert.Empty(baseNames.Except(names)); // base names unchanged (engines and SaveTo rely on them)
        Assert.All(m.named_parameters(), p => Assert.Equal(added.Contains(p.name), p.parameter.requires_grad));

        var shapes = m.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([4L, 64], shapes["model.layers.0.self_attn.q_proj.lora_A.weight"]);
        Assert.Equal([32L, 4], shapes["model.layers.0.self_attn.v_proj.lora_B.weight"]);
        Assert.Equal([4L, 176], shapes["model.layers.1.mlp.down_proj.lora_A.weight"]);

        // B starts at zero: same logits; A is drawn (not zero) within PEFT's kaiming bound 1/sqrt(in).
        using var after = m.forward(ids).detach();
        Assert.Equal(Bytes(before), Bytes(after));
        var a = m.AdapterWeights()[0].A;
        Assert.True(a.abs().max().item<float>() is > 0 and <= 0.125f);

        using var opt = Optimizers.AdamW(m, 1e-3);
        Assert.Equal(12, opt.parameters().Count());
        Assert.All(opt.parameters(), p => Assert.True(p.requires_grad));
    }

    public static TheoryData<string[], bool> PeftCases() => new()
    {
        { ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], false },
        { ["q_proj", "v_proj", "down_proj"], true },
    };

    // Expected values come from the file's tensors in float64 (W x + scale B A x), not from the code under test.
    [Theory]
    [MemberData(nameof(PeftCases))]
    public void A_peft_adapter_gives_the_float64_reference_outputs(string[] targets, bool rsLora)
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 2);
        const int r = 4;
        const double alpha = 6;
        WritePeftFolder(dir["adapter"], m, r, alpha, targets, rsLora);
        double scale = rsLora ? alpha / Math.Sqrt(r) : alpha / r;
        m.LoadAdapter(dir["adapter"]);
        m.eval(); // dropout 0.05 in the config: off in eval mode, as in PEFT
        Assert.Equal(rsLora, m.Lora!.UseRsLora);

        using var file = SafetensorsFile.Open(dir["adapter/adapter_model.safetensors"]);
        var baseWeights = BaseWeights(m);
        var modules = m.named_modules().ToDictionary(x => x.name, x => x.module);
        var x = randn([3, 5, 64], generator: new Generator(4));
        int checkedModules = 0;
        foreach (var (module, w) in baseWeights)
        {
            if (!targets.Any(t => module.EndsWith("." + t, StringComparison.Ordinal))) continue;
            var input = module.EndsWith("down_proj", StringComparison.Ordinal) ? randn([3, 5, 176], generator: new Generator(5)) : x;
            using var a64 = file.Read(Prefix + module + ".lora_A.weight").to(ScalarType.Float64);
            using var b64 = file.Read(Prefix + module + ".lora_B.weight").to(ScalarType.Float64);
            using var x64 = input.to(ScalarType.Float64);
            using var w64 = w.detach().to(ScalarType.Float64);
            using var expected = x64.matmul(w64.t()) + x64.matmul(a64.t()).matmul(b64.t()) * scale;
            using var actual = ((nn.Module<Tensor, Tensor>)modules[module]).forward(input).detach().to(ScalarType.Float64);
            double err = (actual - expected).abs().max().item<double>(), size = expected.abs().max().item<double>();
            using var baseOnly = x64.matmul(w64.t());
            double update = (expected - baseOnly).abs().max().item<double>();
            Assert.True(update > 100 * err, $"{module}: the adapter's update {update:G3} is too small to test against error {err:G3}");
            Assert.True(err <= 1e-5 * size, $"{module}: max |diff| {err:G3} against the float64 reference (scale {size:G3})");
            checkedModules++;
        }
        Assert.Equal(2 * targets.Length, checkedModules);

        // End to end: the logits equal a float64 model whose weights are W + scale B A, merged by this test.
        using var reference = LlamaModel.Create(Small, seed: 2);
        reference.to(ScalarType.Float64);
        using (no_grad())
            foreach (var (name, p) in reference.named_parameters())
            {
                string module = name[..^".weight".Length];
                if (file.Entries.ContainsKey(Prefix + module + ".lora_A.weight"))
                {
                    using var a64 = file.Read(Prefix + module + ".lora_A.weight").to(ScalarType.Float64);
                    using var b64 = file.Read(Prefix + module + ".lora_B.weight").to(ScalarType.Float64);
                    p.add_(b64.matmul(a64), alpha: scale);
                }
            }
        using var ids = Ids();
        using var logits = m.forward(ids).detach().to(ScalarType.Float64);
        using var expectedLogits = reference.forward(ids).detach();
        using var baseModel = LlamaModel.Create(Small, seed: 2);
        using var baseLogits = baseModel.forward(ids).detach().to(ScalarType.Float64);
        double logitErr = (logits - expectedLogits).abs().max().item<double>();
        double logitScale = expectedLogits.abs().max().item<double>();
        double adapterEffect = (expectedLogits - baseLogits).abs().max().item<double>();
        Assert.True(adapterEffect > 100 * logitErr, $"adapter effect {adapterEffect:G3} vs error {logitErr:G3}");
        Assert.True(logitErr <= 1e-4 * logitScale, $"logits differ from the merged float64 reference by {logitErr:G3} (scale {logitScale:G3})");
    }

    [Fact]
    public void SaveAdapter_writes_peft_layout_and_round_trips_bit_exactly()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 3);
        m.AddLora(new LoraConfig { R = 8, Alpha = 16, Dropout = 0.1, UseRsLora = true, TargetModules = ["k_proj", "o_proj", "up_proj"] });
        using (no_grad())
            foreach (var w in m.AdapterWeights()) w.B.normal_(0, 0.05); // B = 0 would hide a swapped or dropped B
        m.SaveAdapter(dir["out"]);

        var json = JsonNode.Parse(File.ReadAllText(dir["out/adapter_config.json"]))!.AsObject();
        Assert.Equal("LORA", json["peft_type"]!.GetValue<string>());
        Assert.Equal(8, json["r"]!.GetValue<int>());
        Assert.Equal(16.0, json["lora_alpha"]!.GetValue<double>());
        Assert.True(json["use_rslora"]!.GetValue<bool>());
        Assert.Equal("none", json["bias"]!.GetValue<string>());
        Assert.Equal(["k_proj", "o_proj", "up_proj"], json["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        using (var file = SafetensorsFile.Open(dir["out/adapter_model.safetensors"]))
        {
            Assert.Equal(12, file.Entries.Count);
            Assert.Equal([8L, 64], file.Entries["base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight"].Shape);
            Assert.Equal([176L, 8], file.Entries["base_model.model.model.layers.1.mlp.up_proj.lora_B.weight"].Shape);
        }

        using var loaded = LlamaModel.Create(Small, seed: 3);
        loaded.LoadAdapter(dir["out"]);
        Assert.Equal(m.Lora! with { Seed = 0 }, loaded.Lora! with { Seed = 0, TargetModules = m.Lora!.TargetModules });
        var original = m.AdapterWeights();
        var copy = loaded.AdapterWeights();
        Assert.Equal(original.Select(w => w.Module), copy.Select(w => w.Module));
        for (int i = 0; i < original.Count; i++)
        {
            Assert.Equal(Bytes(original[i].A), Bytes(copy[i].A));
            Assert.Equal(Bytes(original[i].B), Bytes(copy[i].B));
            Assert.Equal(original[i].Scale, copy[i].Scale);
        }
        m.eval(); loaded.eval();
        using var ids = Ids();
        Assert.Equal(Bytes(m.forward(ids)), Bytes(loaded.forward(ids)));
    }

    [Fact]
    public void MergeAdapter_gives_the_unmerged_output_and_removes_the_adapter()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 4);
        WritePeftFolder(dir["a"], m, 4, 8, [.. LoraConfig.AllProjections], rsLora: false);
        m.LoadAdapter(dir["a"]);
        m.eval();
        using var ids = Ids();
        using var unmerged = m.forward(ids).detach();
        var baseBefore = Snapshot(LlamaModel.Create(Small, seed: 4));
        m.MergeAdapter();

        Assert.Null(m.Lora);
        Assert.Empty(m.AdapterWeights());
        Assert.DoesNotContain(m.named_parameters(), p => p.name.Contains("lora_", StringComparison.Ordinal));
        Assert.All(m.named_parameters(), p => Assert.True(p.parameter.requires_grad));
        using var merged = m.forward(ids).detach();
        double diff = (merged - unmerged).abs().max().item<float>(), size = unmerged.abs().max().item<float>();
        Assert.True(diff <= 1e-5 * size, $"merged logits differ by {diff:G3} (scale {size:G3})");
        // The merge really moved the projections (and nothing else).
        var after = Snapshot(m);
        Assert.False(after["model.layers.0.self_attn.q_proj.weight"].equal(baseBefore["model.layers.0.self_attn.q_proj.weight"]).all().item<bool>());
        Assert.True(after["model.norm.weight"].equal(baseBefore["model.norm.weight"]).all().item<bool>());
        // A merged model saves as a plain HF model.
        m.SaveTo(dir["merged"]);
        using var reloaded = LlamaModel.FromPretrained(dir["merged"]);
        Assert.Equal(Bytes(merged), Bytes(reloaded.forward(ids)));
    }

    static PackedDataset Arithmetic(int count) =>
        PackedDataset.FromExamples(ArithmeticTask.Generate(count, seed: 1, maxOperand: 9), Tokenizer.ByteLevel(), 32);

    [Fact]
    public void Training_steps_change_only_the_adapter_and_the_checkpoint_holds_only_the_adapter()
    {
        using var dir = new TestSetup.TempDir();
        var (m, t) = LoraRun();
        var initial = Snapshot(m);
        var losses = Enumerable.Range(0, 6).Select(_ => t.Step().Loss).ToList();
        Assert.True(losses.Last() < losses.First(), $"loss {losses.First():F3} -> {losses.Last():F3}");
        var after = Snapshot(m);
        foreach (var (name, value) in initial)
        {
            bool same = Bytes(value).SequenceEqual(Bytes(after[name]));
            if (name.Contains(".lora_B.", StringComparison.Ordinal)) Assert.False(same, $"{name} did not train");
            else if (!name.Contains(".lora_A.", StringComparison.Ordinal)) Assert.True(same, $"frozen {name} changed");
        }
        Assert.All(m.named_parameters().Where(p => !p.parameter.requires_grad), p => Assert.Null(p.parameter.grad));

        string folder = t.SaveCheckpoint(dir.Path);
        Assert.True(File.Exists(Path.Combine(folder, "adapter_model.safetensors")));
        Assert.False(File.Exists(Path.Combine(folder, "model.safetensors")));
        var continued = Enumerable.Range(0, 2).Select(_ => t.Step().Loss).ToList();
        t.Dispose(); m.Dispose();

        var (m2, t2) = LoraRun();
        using (m2) using (t2)
        {
            Assert.True(t2.Resume(dir.Path));
            Assert.Equal(6, t2.StepCount);
            Assert.Equal(continued, Enumerable.Range(0, 2).Select(_ => t2.Step().Loss));
        }

        using var plain = LlamaModel.Create(Small, seed: 5);
        using var plainTrainer = new Trainer(plain, new ShardedDataLoader(Arithmetic(64), batchSize: 4, seed: 5));
        Assert.Contains("AddLora", Assert.Throws<InvalidDataException>(() => plainTrainer.Resume(dir.Path)).Message);
    }

    static (LlamaModel, Trainer) LoraRun()
    {
        var m = LlamaModel.Create(Small, seed: 5);
        m.AddLora(new LoraConfig { R = 4, Alpha = 8 });
        var data = new ShardedDataLoader(Arithmetic(64), batchSize: 4, seed: 5);
        return (m, new Trainer(m, data, new TrainerOptions { LearningRate = 1e-2, WarmupSteps = 1, TotalSteps = 8, WeightDecay = 0.1 }));
    }

    public static TheoryData<string, string> BadConfigs() => new()
    {
        { """{"use_dora": true}""", "use_dora" },
        { """{"bias": "lora_only"}""", "\"bias\"" },
        { """{"modules_to_save": ["lm_head"]}""", "modules_to_save" },
        { """{"rank_pattern": {"q_proj": 8}}""", "rank_pattern" },
        { """{"target_modules": ["q_proj", "embed_tokens"]}""", "embed_tokens" },
        { """{"target_modules": "model.*q_proj"}""", "target_modules" },
        { """{"peft_type": "IA3"}""", "IA3" },
        { """{"r": 0}""", "r" },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void Unsupported_peft_settings_are_refused_by_name_and_change_nothing(string edit, string named)
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 6);
        WritePeftFolder(dir["a"], m, 4, 8, ["q_proj"], rsLora: false, editConfig: c =>
        {
            foreach (var (k, v) in JsonNode.Parse(edit)!.AsObject()) c[k] = v?.DeepClone();
        });
        var ex = Assert.Throws<InvalidDataException>(() => m.LoadAdapter(dir["a"]));
        Assert.Contains(named, ex.Message);
        Assert.Contains("adapter_config.json", ex.Message);
        Assert.Null(m.Lora);
        Assert.DoesNotContain(m.named_parameters(), p => p.name.Contains("lora_", StringComparison.Ordinal));
    }

    [Fact]
    public void Adapters_that_do_not_fit_the_model_name_the_tensor_and_both_shapes()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 7);
        // Rank in the file's tensors differs from the config's r.
        WritePeftFolder(dir["rank"], m, 4, 8, ["q_proj"], false, editShape: (n, s) => n.EndsWith("layers.1.self_attn.q_proj.lora_A.weight", StringComparison.Ordinal) ? [6, s[1]] : s);
        var ex = Assert.Throws<InvalidDataException>(() => m.LoadAdapter(dir["rank"]));
        Assert.Contains("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight", ex.Message);
        Assert.Contains("[6, 64]", ex.Message);
        Assert.Contains("[4, 64]", ex.Message);

        // Made for another base model (wider hidden size).
        using var wide = LlamaModel.Create(Small with { HiddenSize = 96, NumAttentionHeads = 4 }, seed: 7);
        WritePeftFolder(dir["wide"], wide, 4, 8, ["v_proj"], false);
        ex = Assert.Throws<InvalidDataException>(() => m.LoadAdapter(dir["wide"]));
        Assert.Contains("v_proj.lora_A.weight", ex.Message);
        Assert.Contains("[4, 96]", ex.Message);
        Assert.Contains("[4, 64]", ex.Message);

        // DoRA's magnitude vector, even if the config hides it.
        WritePeftFolder(dir["dora"], m, 4, 8, ["q_proj"], false);
        using (var file = SafetensorsFile.Open(dir["dora/adapter_model.safetensors"]))
        {
            var tensors = file.Entries.Keys.Select(k => (k, file.Read(k))).ToList();
            tensors.Add(("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", ones(64)));
            file.Dispose();
            SafetensorsFile.Save(dir["dora/adapter_model.safetensors"], tensors);
        }
        Assert.Contains("DoRA", Assert.Throws<InvalidDataException>(() => m.LoadAdapter(dir["dora"])).Message);

        // A tensor the config promises is missing (target_modules lists k_proj, the file has none).
        WritePeftFolder(dir["missing"], m, 4, 8, ["q_proj"], false, editConfig: c => c["target_modules"] = new JsonArray("q_proj", "k_proj"));
        ex = Assert.Throws<InvalidDataException>(() => m.LoadAdapter(dir["missing"]));
        Assert.Contains("k_proj.lora_A.weight", ex.Message);
        Assert.Contains("missing", ex.Message);
        Assert.Null(m.Lora); // nothing applied by any failed load

        // Loading into a model whose adapter has another rank.
        m.AddLora(new LoraConfig { R = 8, TargetModules = ["q_proj"] });
        var before = Snapshot(m);
        WritePeftFolder(dir["r4"], m, 4, 8, ["q_proj"], false);
        ex = Assert.Throws<InvalidDataException>(() => m.LoadAdapter(dir["r4"]));
        Assert.Contains("q_proj.lora_A.weight", ex.Message);
        Assert.Contains("[4, 64]", ex.Message);
        Assert.Contains("[8, 64]", ex.Message);
        Assert.All(Snapshot(m), kv => Assert.Equal(Bytes(before[kv.Key]), Bytes(kv.Value)));
    }

    // Users wrap steps in DisposeScopes; an adapter made or loaded inside one must outlive it.
    [Fact]
    public void Adapters_made_or_loaded_inside_a_dispose_scope_outlive_it()
    {
        using var dir = new TestSetup.TempDir();
        using var m = LlamaModel.Create(Small, seed: 8);
        using (NewDisposeScope()) m.AddLora(new LoraConfig { R = 2 });
        using var ids = Ids();
        using (var logits = m.forward(ids)) Assert.True(logits.isfinite().all().item<bool>());
        m.SaveAdapter(dir["a"]);
        using var other = LlamaModel.Create(Small, seed: 8);
        using (NewDisposeScope()) other.LoadAdapter(dir["a"]);
        Assert.All(other.AdapterWeights(), w => Assert.Equal(2L, w.A.shape[0]));
        using (var logits = other.forward(ids)) Assert.True(logits.isfinite().all().item<bool>());
        using (NewDisposeScope()) other.MergeAdapter();
        using (var logits = other.forward(ids)) Assert.True(logits.isfinite().all().item<bool>());
    }

    // Qwen2-style q/k/v biases stay the base layer's (names unchanged, frozen), and merging keeps them.
    [Fact]
    public void Projections_with_biases_keep_them_under_an_adapter_and_after_merging()
    {
        using var m = LlamaModel.Create(Small with { ModelType = "qwen2", QkvBias = true }, seed: 9);
        using (no_grad()) foreach (var (name, p) in m.named_parameters()) if (name.EndsWith(".bias", StringComparison.Ordinal)) p.normal_(0, 0.5);
        using var ids = Ids();
        using var before = m.forward(ids).detach();
        var names = m.named_parameters().Select(p => p.name).ToList();
        m.AddLora(new LoraConfig { R = 2, TargetModules = ["q_proj", "k_proj", "v_proj"] });
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", m.named_parameters().Select(p => p.name));
        Assert.False(m.named_parameters().First(p => p.name == "model.layers.0.self_attn.q_proj.bias").parameter.requires_grad);
        Assert.Equal(Bytes(before), Bytes(m.forward(ids)));
        using (no_grad()) foreach (var w in m.AdapterWeights()) w.B.normal_(0, 0.1);
        m.eval();
        using var unmerged = m.forward(ids).detach();
        m.MergeAdapter();
        Assert.Equal(names.Order(), m.named_parameters().Select(p => p.name).Order()); // same names (slots re-register, so order may move)
        using var merged = m.forward(ids).detach();
        Assert.True((merged - unmerged).abs().max().item<float>() <= 1e-5f * unmerged.abs().max().item<float>());
        Assert.True((merged - before).abs().max().item<float>() > 1e-3f, "the adapter should have changed the output");
    }

    // Module.to() replaces parameters: the adapter moves with the model, and merging puts the moved base back.
    [Fact]
    public void An_adapter_moves_with_the_model_and_merges_after_the_move()
    {
        using var m = LlamaModel.Create(Small with { ModelType = "qwen2", QkvBias = true }, seed: 10);
        m.AddLora(new LoraConfig { R = 2 });
        using (no_grad()) foreach (var w in m.AdapterWeights()) w.B.normal_(0, 0.1);
        m.to(ScalarType.Float64);
        m.eval();
        Assert.All(m.AdapterWeights(), w => Assert.Equal(ScalarType.Float64, w.A.dtype));
        using var ids = Ids();
        using var unmerged = m.forward(ids).detach();
        Assert.Equal(ScalarType.Float64, unmerged.dtype);
        var names = m.named_parameters().Select(p => p.name).Where(n => !n.Contains(".lora_", StringComparison.Ordinal)).Order().ToList();
        m.MergeAdapter();
        Assert.Equal(names, m.named_parameters().Select(p => p.name).Order());
        Assert.All(m.named_parameters(), p => Assert.Equal(ScalarType.Float64, p.parameter.dtype));
        using var merged = m.forward(ids).detach();
        Assert.True((merged - unmerged).abs().max().item<double>() <= 1e-9 * unmerged.abs().max().item<double>());
    }
}
