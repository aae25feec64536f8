using System.Text.Json.Nodes;

namespace VectorLm.Runtime.Tests;

/// <summary>The fixtures made with Hugging Face's libraries under tests/fixtures, found from the test binary.</summary>
internal static class HfFixtures
{
    /// <summary>tests/fixtures/hf: tokenizers and models with transformers' reference outputs (make_fixtures.py there).</summary>
    public static string Root { get; } = Find("hf");

    /// <summary>tests/fixtures/lora: a base model and PEFT adapters with PEFT's logits (make_peft_fixture.py there).</summary>
    public static string Lora { get; } = Find("lora");

    static string Find(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures", name);
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/fixtures/{name} not found above {AppContext.BaseDirectory}");
    }

    public static string Tokenizer(string name) => Path.Combine(Root, "tokenizers", name);
    public static string Model(string name) => Path.Combine(Root, "models", name);

    public static JsonObject Reference(string folder) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "reference.json")))!;

    public static int[] Ints(JsonNode? node) => node!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
}
