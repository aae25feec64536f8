using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VectorLm.Tokenization;

/// <summary>A stretch of text on its way to the BPE model; <see cref="AtStart"/>: it begins at offset 0 of the input.</summary>
internal readonly record struct PreToken(string Text, bool AtStart);

/// <summary>
/// A <c>pre_tokenizer</c> of <c>tokenizer.json</c>: splits text into words the BPE model encodes one by one. Supported
/// types: <c>Sequence</c>, <c>Split</c> (regex or string pattern; behaviours Isolated, Removed, MergedWithPrevious,
/// MergedWithNext; not inverted), <c>ByteLevel</c> (with or without its GPT-2 regex) and <c>Metaspace</c>.
/// </summary>
internal abstract class HfPreTokenizer
{
    /// <summary>GPT-2's word pattern, used by <c>ByteLevel</c> when <c>use_regex</c> is true.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public abstract void Split(PreToken token, List<PreToken> output);

    public List<PreToken> Apply(List<PreToken> tokens)
    {
        var output = new List<PreToken>(tokens.Count * 2);
        foreach (var t in tokens) Split(t, output);
        return output;
    }

    public static HfPreTokenizer? Parse(JsonNode? node, string field)
    {
        if (node is null) return null;
        string type = HfJson.Type(node, field);
        switch (type)
        {
            case "Sequence":
                return new SequencePreTokenizer(HfJson.Array(node, "pretokenizers", field)
                    .Select((n, i) => Parse(n, $"{field}.pretokenizers[{i}]") ?? throw new InvalidDataException($"field \"{field}.pretokenizers[{i}]\" is null"))
                    .ToArray());
            case "Split":
            {
                if (HfJson.Bool(node, "invert", false)) throw new InvalidDataException($"field \"{field}.invert\" = true is not supported");
                string behavior = HfJson.String(node, "behavior", field);
                if (behavior is not ("Isolated" or "Removed" or "MergedWithPrevious" or "MergedWithNext"))
                    throw new InvalidDataException($"field \"{field}.behavior\" is \"{behavior}\"; supported: Isolated, Removed, MergedWithPrevious, MergedWithNext");
                var pattern = node["pattern"] ?? throw new InvalidDataException($"field \"{field}.pattern\" is missing");
                string regex = pattern["Regex"] is JsonValue r ? r.GetValue<string>()
                    : pattern["String"] is JsonValue s ? Regex.Escape(s.GetValue<string>())
                    : throw new InvalidDataException($"field \"{field}.pattern\" is {pattern.ToJsonString()}; expected {{\"Regex\": ...}} or {{\"String\": ...}}");
                return new SplitPreTokenizer(CompilePattern(regex, field + ".pattern"), pattern["Regex"] is not null ? regex : null, behavior);
            }
            case "ByteLevel":
                return new ByteLevelPreTokenizer(HfJson.Bool(node, "add_prefix_space", true), HfJson.Bool(node, "use_regex", true));
            case "Metaspace":
            {
                string replacement = HfJson.String(node, "replacement", field);
                if (replacement.Length != 1) throw new InvalidDataException($"field \"{field}.replacement\" must be one character");
                string scheme = HfJson.OptionalString(node, "prepend_scheme")
                    ?? (HfJson.Bool(node, "add_prefix_space", true) ? "always" : "never");
                if (scheme is not ("always" or "first" or "never"))
                    throw new InvalidDataException($"field \"{field}.prepend_scheme\" is \"{scheme}\"; expected always, first or never");
                return new MetaspacePreTokenizer(replacement[0], scheme, HfJson.Bool(node, "split", true));
            }
            default:
                throw new InvalidDataException($"field \"{field}.type\" is \"{type}\"; supported pre-tokenizers: Sequence, Split, ByteLevel, Metaspace");
        }
    }

    static Regex CompilePattern(string pattern, string field)
    {
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"field \"{field}\" is a regex .NET cannot compile ({e.Message}): {pattern}", e);
        }
    }

    /// <summary>
    /// Splits <paramref name="text"/> at the matches of <paramref name="regex"/> as Rust's regex engines do over code
    /// points: .NET matches UTF-16 units, where a character outside the BMP is two surrogates of category Cs, so each
    /// such character is matched as one stand-in character of its category (letter, number, mark or other).
    /// </summary>
    internal static IEnumerable<(int Start, int End, bool IsMatch)> Segments(Regex regex, string text)
    {
        string mapped = text;
        int[]? offsets = null;
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0)
        {
            var sb = new StringBuilder(text.Length);
            var list = new List<int>(text.Length + 1);
            for (int i = 0; i < text.Length; i++)
            {
                list.Add(i);
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    sb.Append(StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]))));
                    i++;
                }
                else sb.Append(text[i]);
            }
            list.Add(text.Length);
            mapped = sb.ToString();
            offsets = list.ToArray();
        }
        int Original(int i) => offsets is null ? i : offsets[i];
        int previous = 0;
        for (var m = regex.Match(mapped); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            if (m.Index > previous) yield return (Original(previous), Original(m.Index), false);
            yield return (Original(m.Index), Original(m.Index + m.Length), true);
            previous = m.Index + m.Length;
        }
        if (previous < mapped.Length) yield return (Original(previous), Original(mapped.Length), false);
    }

    static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => 'a',
        UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => '0',
        UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => '\u0301',
        _ => '\u00A7', // § : not a letter, number, mark or space
    };

    internal sealed class SequencePreTokenizer(HfPreTokenizer[] parts) : HfPreTokenizer
    {
        public IReadOnlyList<HfPreTokenizer> Parts => parts;

        public override void Split(PreToken token, List<PreToken> output)
        {
            var current = new List<PreToken> { token };
            foreach (var p in parts) current = p.Apply(current);
            output.AddRange(current);
        }
    }

    internal sealed class SplitPreTokenizer(Regex regex, string? sourcePattern, string behavior) : HfPreTokenizer
    {
        /// <summary>The regex as written in the file (null for a string pattern).</summary>
        public string? SourcePattern => sourcePattern;
        public string Behavior => behavior;

        public override void Split(PreToken token, List<PreToken> output)
        {
            string text = token.Text;
            string? carry = null; // MergedWithNext: a match waiting for the text after it
            int carryStart = 0;
            bool any = false;
            int lastIndex = -1;
            foreach (var (start, end, isMatch) in Segments(regex, text))
            {
                string piece = text[start..end];
                bool atStart = token.AtStart && start == 0;
                switch (behavior)
                {
                    case "Removed" when isMatch:
                        continue;
                    case "MergedWithPrevious" when isMatch && any && lastIndex == output.Count - 1:
                        output[^1] = output[^1] with { Text = output[^1].Text + piece };
                        continue;
                    case "MergedWithNext" when isMatch:
                        if (carry is not null) { output.Add(new PreToken(carry, token.AtStart && carryStart == 0)); }
                        carry = piece;
                        carryStart = start;
                        continue;
                }
                if (carry is not null)
                {
                    piece = carry + piece;
                    atStart = token.AtStart && carryStart == 0;
                    carry = null;
                }
                output.Add(new PreToken(piece, atStart));
                any = true;
                lastIndex = output.Count - 1;
            }
            if (carry is not null) output.Add(new PreToken(carry, token.AtStart && carryStart == 0));
        }
    }

    internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : HfPreTokenizer
    {
        static readonly Regex Gpt2 = new(Gpt2Pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);

        public bool AddPrefixSpace => addPrefixSpace;
        public bool UseRegex => useRegex;

        public override void Split(PreToken token, List<PreToken> output)
        {
            string text = token.Text;
            if (addPrefixSpace && !text.StartsWith(' ')) text = " " + text;
            if (!useRegex)
            {
                output.Add(new PreToken(ByteLevelAlphabet.Encode(text), token.AtStart));
                return;
            }
            foreach (var (start, end, _) in Segments(Gpt2, text))
                output.Add(new PreToken(ByteLevelAlphabet.Encode(text[start..end]), token.AtStart && start == 0));
        }
    }

    internal sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : HfPreTokenizer
    {
        public char Replacement => replacement;
        public string PrependScheme => prependScheme;
        public bool SplitWords => split;

        public override void Split(PreToken token, List<PreToken> output)
        {
            string text = token.Text.Replace(' ', replacement);
            if (text.Length > 0 && text[0] != replacement && (prependScheme == "always" || (prependScheme == "first" && token.AtStart)))
                text = replacement + text;
            if (!split)
            {
                output.Add(token with { Text = text });
                return;
            }
            // MergedWithNext on the replacement character: each word keeps the marker in front of it.
            int start = 0;
            for (int i = 1; i <= text.Length; i++)
            {
                if (i < text.Length && text[i] != replacement) continue;
                output.Add(new PreToken(text[start..i], token.AtStart && start == 0));
                start = i;
            }
        }
    }
}
