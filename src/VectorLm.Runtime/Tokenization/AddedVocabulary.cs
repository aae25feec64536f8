using System.Text.Json.Nodes;

namespace VectorLm.Tokenization;

/// <summary>One entry of <c>added_tokens</c> in <c>tokenizer.json</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool Normalized, bool LStrip, bool RStrip);

/// <summary>
/// The added tokens of a <c>tokenizer.json</c>, matched atomically in text before the model sees it, as tokenizers'
/// <c>AddedVocabulary</c> does: leftmost-longest matches of the tokens with <c>normalized: false</c> in the raw text, then
/// of those with <c>normalized: true</c> in each normalized stretch between them; <c>lstrip</c>/<c>rstrip</c> let a
/// match swallow the whitespace beside it.
/// </summary>
internal sealed class AddedVocabulary
{
    // Candidates by first character, longest first (Llama 3 has 256 added tokens, all starting with '<').
    readonly Dictionary<char, AddedToken[]> _raw, _normalized;

    public AddedVocabulary(IReadOnlyList<AddedToken> tokens)
    {
        Tokens = tokens;
        static Dictionary<char, AddedToken[]> Index(IEnumerable<AddedToken> list) => list
            .GroupBy(t => t.Content[0]).ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
        _raw = Index(tokens.Where(t => !t.Normalized));
        _normalized = Index(tokens.Where(t => t.Normalized));
        ById = tokens.GroupBy(t => t.Id).ToDictionary(g => g.Key, g => g.Last());
    }

    public IReadOnlyList<AddedToken> Tokens { get; }
    public IReadOnlyDictionary<int, AddedToken> ById { get; }

    public static AddedVocabulary Parse(JsonNode? node, string field)
    {
        if (node is null) return new AddedVocabulary([]);
        var array = node as JsonArray ?? throw new InvalidDataException($"field \"{field}\" is not an array");
        var tokens = new List<AddedToken>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            var t = array[i] ?? throw new InvalidDataException($"field \"{field}[{i}]\" is null");
            string f = $"{field}[{i}]";
            if (HfJson.Bool(t, "single_word", false))
                throw new InvalidDataException($"field \"{f}.single_word\" = true is not supported (token \"{t["content"]}\")");
            string content = HfJson.String(t, "content", f);
            if (content.Length == 0) throw new InvalidDataException($"field \"{f}.content\" is empty");
            tokens.Add(new AddedToken(HfJson.Int(t, "id", f), content, HfJson.Bool(t, "special", false),
                HfJson.Bool(t, "normalized", true), HfJson.Bool(t, "lstrip", false), HfJson.Bool(t, "rstrip", false)));
        }
        return new AddedVocabulary(tokens);
    }

    /// <summary>
    /// Splits <paramref name="text"/> into stretches that are added tokens (<c>Id</c> set) and stretches that are not;
    /// <paramref name="normalizedPass"/> selects the tokens matched after normalization.
    /// </summary>
    public List<(string Text, int Start, int? Id)> Split(string text, bool normalizedPass)
    {
        var tokens = normalizedPass ? _normalized : _raw;
        var result = new List<(string, int, int?)>();
        if (tokens.Count == 0)
        {
            result.Add((text, 0, null));
            return result;
        }
        int previousEnd = 0, i = 0;
        while (i < text.Length)
        {
            AddedToken? best = null;
            if (tokens.TryGetValue(text[i], out var candidates))
                foreach (var t in candidates)
                    if (text.AsSpan(i).StartsWith(t.Content, StringComparison.Ordinal))
                    {
                        best = t; // the longest, as candidates are sorted by length
                        break;
                    }
            if (best is null)
            {
                i++;
                continue;
            }
            int start = i, end = i + best.Content.Length;
            if (best.LStrip)
                while (start > previousEnd && char.IsWhiteSpace(text[start - 1])) start--;
            if (best.RStrip)
                while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
            if (start > previousEnd) result.Add((text[previousEnd..start], previousEnd, null));
            result.Add((text[start..end], start, best.Id));
            previousEnd = i = end;
        }
        if (previousEnd < text.Length) result.Add((text[previousEnd..], previousEnd, null));
        return result;
    }
}
