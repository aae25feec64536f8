using System.Text.Json;
using System.Text.Json.Nodes;

namespace VectorLm.Tokenization;

/// <summary>Typed reads of <c>tokenizer.json</c> fields whose errors name the field.</summary>
internal static class HfJson
{
    public static string Type(JsonNode node, string field) => String(node, "type", field);

    public static string String(JsonNode node, string name, string field) =>
        node[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>()
            : throw new InvalidDataException($"field \"{field}.{name}\" is missing or not a string");

    public static string? OptionalString(JsonNode node, string name) =>
        node[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    public static bool Bool(JsonNode node, string name, bool fallback) =>
        node[name] is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False ? v.GetValue<bool>() : fallback;

    public static int Int(JsonNode node, string name, string field) =>
        node[name] is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? v.GetValue<int>()
            : throw new InvalidDataException($"field \"{field}.{name}\" is missing or not a number");

    public static JsonArray Array(JsonNode node, string name, string field) =>
        node[name] as JsonArray ?? throw new InvalidDataException($"field \"{field}.{name}\" is missing or not an array");

    /// <summary>A <c>pattern</c> of the form <c>{"String": "..."}</c>; a <c>Regex</c> pattern is refused.</summary>
    public static string StringPattern(JsonNode node, string field)
    {
        var pattern = node["pattern"] ?? throw new InvalidDataException($"field \"{field}.pattern\" is missing");
        if (pattern["String"] is JsonValue s) return s.GetValue<string>();
        throw new InvalidDataException($"field \"{field}.pattern\" is {pattern.ToJsonString()}; only {{\"String\": ...}} patterns are supported here");
    }
}
