using System.Text.Json.Nodes;
using VectorLm.Tokenization;
using Xunit;

namespace VectorLm.Runtime.Tests;

/// <summary>
/// <see cref="Tokenizer.FromPretrained"/> against Hugging Face tokenizers' own output on 320 strings per tokenizer
/// (whitespace runs, digits, non-Latin scripts, emoji, control characters, special-token strings) and on random id lists.
/// </summary>
public class HfTokenizerTests
{
    public static TheoryData<string> Names => new() { "bpe_llama3", "bpe_qwen2", "bpe_gpt2", "bpe_gpt2_prefix", "spm_legacy", "spm_metaspace" };

    [Theory, MemberData(nameof(Names))]
    public void Encode_equals_tokenizers_on_every_fixture_string(string name)
    {
        var tok = Tokenizer.FromPretrained(HfFixtures.Tokenizer(name));
        var reference = HfFixtures.Reference(HfFixtures.Tokenizer(name));
        Assert.Equal(reference["vocab_size"]!.GetValue<int>(), tok.VocabSize);
        var failures = new List<string>();
        var strings = reference["strings"]!.AsArray();
        Assert.True(strings.Count >= 300);
        foreach (var entry in strings)
        {
            string text = entry!["text"]!.GetValue<string>();
            var expected = HfFixtures.Ints(entry["ids"]);
            var actual = tok.Encode(text);
            if (!expected.SequenceEqual(actual))
                failures.Add($"{Show(text)}: expected [{string.Join(",", expected)}] got [{string.Join(",", actual)}]");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {strings.Count} differ:\n" + string.Join("\n", failures.Take(15)));
    }

    [Theory, MemberData(nameof(Names))]
    public void Decode_equals_tokenizers_with_and_without_special_tokens(string name)
    {
        var tok = Tokenizer.FromPretrained(HfFixtures.Tokenizer(name));
        var reference = HfFixtures.Reference(HfFixtures.Tokenizer(name));
        var failures = new List<string>();
        foreach (var entry in reference["strings"]!.AsArray().Concat(reference["random_decodes"]!.AsArray()))
        {
            var ids = HfFixtures.Ints(entry!["ids"]);
            string skip = entry["decode"]!.GetValue<string>(), keep = entry["decode_keep"]!.GetValue<string>();
            string gotSkip = tok.Decode(ids), gotKeep = tok.Decode(ids, skipSpecialTokens: false);
            if (gotSkip != skip) failures.Add($"[{string.Join(",", ids)}] skip: expected {Show(skip)} got {Show(gotSkip)}");
            if (gotKeep != keep) failures.Add($"[{string.Join(",", ids)}] keep: expected {Show(keep)} got {Show(gotKeep)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} differ:\n" + string.Join("\n", failures.Take(15)));
    }

    [Theory, MemberData(nameof(Names))]
    public void Bos_from_the_config_matches_transformers_add_special_tokens(string name)
    {
        var tok = Tokenizer.FromPretrained(HfFixtures.Tokenizer(name));
        var reference = HfFixtures.Reference(HfFixtures.Tokenizer(name));
        int checkedCount = 0;
        foreach (var entry in reference["strings"]!.AsArray())
        {
            if (entry!["ids_with_special"] is not JsonArray withSpecial) continue;
            string text = entry["text"]!.GetValue<string>();
            var expected = withSpecial.Select(n => n!.GetValue<int>()).ToArray();
            var plain = HfFixtures.Ints(entry["ids"]);
            // transformers 5 rebuilds a legacy Llama tokenizer's normalizer itself (text starting with a space then
            // differs from the file's pipeline); those strings say nothing about BOS.
            if (!expected.AsSpan(expected.Length - plain.Length).SequenceEqual(plain)) continue;
            Assert.Equal(expected, tok.Encode(text, addBos: tok.AddBosToken, addEos: tok.AddEosToken));
            checkedCount++;
        }
        Assert.True(checkedCount >= 280, $"only {checkedCount} strings have comparable transformers ids");
    }

    [Fact]
    public void Special_ids_come_from_tokenizer_config_special_tokens_map_and_template()
    {
        var llama3 = Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_llama3"));
        Assert.Equal((0, 2, -1, true), (llama3.BosId, llama3.EosId, llama3.UnkId, llama3.AddBosToken)); // BOS from the template
        var qwen2 = Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_qwen2"));
        Assert.Equal((-1, 5, 3, false), (qwen2.BosId, qwen2.EosId, qwen2.PadId, qwen2.AddBosToken));
        var gpt2 = Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_gpt2")); // special_tokens_map.json only
        Assert.Equal((3, 3), (gpt2.BosId, gpt2.EosId));
        var spm = Tokenizer.FromPretrained(HfFixtures.Tokenizer("spm_legacy"));
        Assert.Equal((1, 2, 0, true), (spm.BosId, spm.EosId, spm.UnkId, spm.AddBosToken));
        Assert.Equal(TokenType.Byte, spm.Types[3 + 0x41]);
        Assert.Equal(TokenType.Control, spm.Types[1]);
        Assert.Equal(TokenType.UserDefined, llama3.Types[560]); // <tool>, added but not special
    }

    [Fact]
    public void Gguf_vocabulary_names_llama_cpp_tokenizer_and_pre_tokenizer()
    {
        var cases = new Dictionary<string, (string Model, string? Pre)>
        {
            ["bpe_llama3"] = ("gpt2", "llama-bpe"), ["bpe_qwen2"] = ("gpt2", "qwen2"), ["bpe_gpt2"] = ("gpt2", "gpt-2"),
            ["spm_legacy"] = ("llama", null), ["spm_metaspace"] = ("llama", null),
        };
        foreach (var (name, (model, pre)) in cases)
        {
            var v = Tokenizer.FromPretrained(HfFixtures.Tokenizer(name)).ToGgufVocabulary();
            Assert.Equal((model, pre), (v.Model, v.Pre));
            if (model == "gpt2") Assert.Equal(298, v.Merges!.Count);
        }
        var ex = Assert.Throws<NotSupportedException>(() => Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_gpt2_prefix")).ToGgufVocabulary());
        Assert.Contains("add_prefix_space", ex.Message);
        Assert.Contains("EngineOptions.Backend = Torch", ex.Message);
    }

    [Fact]
    public void Bad_folders_name_the_file_and_field()
    {
        using var dir = new TestSetup.TempDir();
        var missing = Assert.Throws<FileNotFoundException>(() => Tokenizer.FromPretrained(dir.Path));
        Assert.Contains("tokenizer.json", missing.Message);

        string source = File.ReadAllText(Path.Combine(HfFixtures.Tokenizer("bpe_llama3"), "tokenizer.json"));
        void Expect(string json, params string[] parts)
        {
            File.WriteAllText(dir["tokenizer.json"], json);
            var e = Assert.Throws<InvalidDataException>(() => Tokenizer.FromPretrained(dir.Path));
            Assert.Contains("tokenizer.json", e.Message);
            foreach (var p in parts) Assert.Contains(p, e.Message);
        }
        var root = JsonNode.Parse(source)!;
        root["pre_tokenizer"]!["pretokenizers"]![0]!["type"] = "Digits";
        Expect(root.ToJsonString(), "pre_tokenizer.pretokenizers[0].type", "Digits");
        root = JsonNode.Parse(source)!;
        root["model"]!["type"] = "Unigram";
        Expect(root.ToJsonString(), "model.type", "Unigram");
        root = JsonNode.Parse(source)!;
        root["decoder"]!["type"] = "WordPiece";
        Expect(root.ToJsonString(), "decoder.type", "WordPiece");
        root = JsonNode.Parse(source)!;
        root["added_tokens"]![0]!["single_word"] = true;
        Expect(root.ToJsonString(), "added_tokens[0].single_word");
        Expect("{ not json", "not valid JSON");

        File.WriteAllText(dir["tokenizer.json"], source);
        File.WriteAllText(dir["tokenizer_config.json"], """{"eos_token": "<|no_such_token|>"}""");
        var cfg = Assert.Throws<InvalidDataException>(() => Tokenizer.FromPretrained(dir.Path));
        Assert.Contains("tokenizer_config.json", cfg.Message);
        Assert.Contains("eos_token", cfg.Message);
    }

    [Fact]
    public void SavePretrained_copies_the_files_and_reloads_to_the_same_ids()
    {
        using var dir = new TestSetup.TempDir();
        var tok = Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_llama3"));
        tok.SavePretrained(dir.Path);
        var back = Tokenizer.FromPretrained(dir.Path);
        Assert.Equal(tok.Encode("Hello <|eot_id|> 1234 Привет"), back.Encode("Hello <|eot_id|> 1234 Привет"));
        Assert.Throws<InvalidOperationException>(() => tok.Save(dir["x.json"]));
    }

    [Fact]
    public void Packed_examples_start_with_bos_only_where_the_tokenizer_adds_it()
    {
        var examples = new[] { new VectorLm.Data.PromptCompletion("1+2=", "3") };
        var qwen2 = Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_qwen2"));
        int[] expected = [.. qwen2.Encode("1+2="), .. qwen2.Encode("3"), qwen2.EosId];
        var packed = VectorLm.Data.PackedDataset.FromExamples(examples, qwen2, sequenceLength: expected.Length - 1);
        Assert.Equal(expected[..^1].Select(i => (long)i), packed.Inputs(0).ToArray());
        var llama3 = Tokenizer.FromPretrained(HfFixtures.Tokenizer("bpe_llama3"));
        var packedLlama3 = VectorLm.Data.PackedDataset.FromExamples(examples, llama3, sequenceLength: 4);
        Assert.Equal(llama3.BosId, (int)packedLlama3.Inputs(0)[0]);
    }

    static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s);
}
