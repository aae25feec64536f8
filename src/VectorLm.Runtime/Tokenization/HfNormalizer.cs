using System.Text;
using System.Text.Json.Nodes;

namespace VectorLm.Tokenization;

/// <summary>
/// A <c>normalizer</c> of <c>tokenizer.json</c>: rewrites each stretch of text between added tokens. Supported types:
/// <c>Sequence</c>, <c>Prepend</c>, <c>Replace</c> (string pattern), <c>NFC</c>, <c>NFKC</c>, <c>NFD</c>, <c>NFKD</c>,
/// <c>Lowercase</c>; any other is refused by name.
/// </summary>
internal abstract class HfNormalizer
{
    public abstract string Normalize(string text);

    public static HfNormalizer? Parse(JsonNode? node, string field)
    {
        if (node is null) return null;
        string type = HfJson.Type(node, field);
        return type switch
        {
            "Sequence" => new SequenceNormalizer(HfJson.Array(node, "normalizers", field)
                .Select((n, i) => Parse(n, $"{field}.normalizers[{i}]") ?? throw new InvalidDataException($"field \"{field}.normalizers[{i}]\" is null"))
                .ToArray()),
            "Prepend" => new PrependNormalizer(HfJson.String(node, "prepend", field)),
            "Replace" => new ReplaceNormalizer(HfJson.StringPattern(node, field), HfJson.String(node, "content", field)),
            "NFC" => new UnicodeNormalizer(NormalizationForm.FormC),
            "NFKC" => new UnicodeNormalizer(NormalizationForm.FormKC),
            "NFD" => new UnicodeNormalizer(NormalizationForm.FormD),
            "NFKD" => new UnicodeNormalizer(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseNormalizer(),
            _ => throw new InvalidDataException($"field \"{field}.type\" is \"{type}\"; supported normalizers: Sequence, Prepend, Replace, NFC, NFKC, NFD, NFKD, Lowercase"),
        };
    }

    internal sealed class SequenceNormalizer(HfNormalizer[] parts) : HfNormalizer
    {
        public IReadOnlyList<HfNormalizer> Parts => parts;
        public override string Normalize(string text)
        {
            foreach (var p in parts) text = p.Normalize(text);
            return text;
        }
    }

    internal sealed class PrependNormalizer(string prefix) : HfNormalizer
    {
        public string Prefix => prefix;
        // tokenizers prepends only to non-empty text.
        public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
    }

    internal sealed class ReplaceNormalizer(string pattern, string content) : HfNormalizer
    {
        public string Pattern => pattern;
        public string Content => content;
        public override string Normalize(string text) => pattern.Length == 0 ? text : text.Replace(pattern, content, StringComparison.Ordinal);
    }

    internal sealed class UnicodeNormalizer(NormalizationForm form) : HfNormalizer
    {
        public NormalizationForm Form => form;
        // Text with a lone surrogate cannot be normalized; tokenizers sees such text as U+FFFD already.
        public override string Normalize(string text) => text.IsNormalized(form) ? text : text.Normalize(form);
    }

    internal sealed class LowercaseNormalizer : HfNormalizer
    {
        public override string Normalize(string text) => text.ToLowerInvariant();
    }
}
