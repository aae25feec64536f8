using System.Text.Json.Nodes;

namespace VectorLm.Runtime.Tests;

/// <summary>The Hugging Face fixtures of tests/fixtures/hf (made by make_fixtures.py there), found from the test binary.</summary>
internal static class HfFixtures
{
    public static string Root { get; } = FindRoot();

    static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures", "hf");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException($"tests/fixtures/hf not found above {AppContext.BaseDirectory}");
    }

    public static string Tokenizer(string name) => Path.Combine(Root, "tokenizers", name);
    public static string Model(string name) => Path.Combine(Root, "models", name);

    public static JsonObject Reference(string folder) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "reference.json")))!;

    public static int[] Ints(JsonNode? node) => node!.AsArray().Select(n => n!.GetValue<int>()).ToArray();
}
