using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace VectorLm.Tokenization;

/// <summary>
/// A <c>decoder</c> of <c>tokenizer.json</c>: turns the token strings of some ids back into text, as tokenizers'
/// <c>decode_chain</c> does. Supported types: <c>Sequence</c>, <c>ByteLevel</c>, <c>Replace</c> (string pattern),
/// <c>ByteFallback</c>, <c>Fuse</c>, <c>Strip</c>, <c>Metaspace</c>; any other is refused by name.
/// </summary>
internal abstract class HfDecoder
{
    public abstract List<string> DecodeChain(List<string> tokens);

    public static HfDecoder? Parse(JsonNode? node, string field)
    {
        if (node is null) return null;
        string type = HfJson.Type(node, field);
        return type switch
        {
            "Sequence" => new SequenceDecoder(HfJson.Array(node, "decoders", field)
                .Select((n, i) => Parse(n, $"{field}.decoders[{i}]") ?? throw new InvalidDataException($"field \"{field}.decoders[{i}]\" is null"))
                .ToArray()),
            "ByteLevel" => new ByteLevelDecoder(),
            "Replace" => new ReplaceDecoder(HfJson.StringPattern(node, field), HfJson.String(node, "content", field)),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => new StripDecoder(HfJson.String(node, "content", field), HfJson.Int(node, "start", field), HfJson.Int(node, "stop", field)),
            "Metaspace" => new MetaspaceDecoder(HfJson.String(node, "replacement", field),
                (HfJson.OptionalString(node, "prepend_scheme") ?? (HfJson.Bool(node, "add_prefix_space", true) ? "always" : "never")) != "never"),
            _ => throw new InvalidDataException($"field \"{field}.type\" is \"{type}\"; supported decoders: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace"),
        };
    }

    sealed class SequenceDecoder(HfDecoder[] parts) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            foreach (var p in parts) tokens = p.DecodeChain(tokens);
            return tokens;
        }
    }

    sealed class ByteLevelDecoder : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            var bytes = new List<byte>();
            foreach (var t in tokens) ByteLevelAlphabet.Decode(t, bytes);
            return [Encoding.UTF8.GetString(bytes.ToArray())];
        }
    }

    sealed class ReplaceDecoder(string pattern, string content) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) =>
            tokens.Select(t => pattern.Length == 0 ? t : t.Replace(pattern, content, StringComparison.Ordinal)).ToList();
    }

    sealed class ByteFallbackDecoder : HfDecoder
    {
        static bool TryByte(string token, out byte value)
        {
            value = 0;
            return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        }

        public override List<string> DecodeChain(List<string> tokens)
        {
            var output = new List<string>(tokens.Count);
            var pending = new List<byte>();
            void Flush()
            {
                if (pending.Count == 0) return;
                var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
                try { output.Add(strict.GetString(pending.ToArray())); }
                catch (DecoderFallbackException) { output.AddRange(Enumerable.Repeat("\uFFFD", pending.Count)); }
                pending.Clear();
            }
            foreach (var t in tokens)
            {
                if (TryByte(t, out byte b)) pending.Add(b);
                else
                {
                    Flush();
                    output.Add(t);
                }
            }
            Flush();
            return output;
        }
    }

    sealed class FuseDecoder : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
    }

    sealed class StripDecoder(string content, int start, int stop) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens) => tokens.Select(Strip).ToList();

        string Strip(string token)
        {
            if (content.Length == 0) return token;
            int from = 0, to = token.Length;
            for (int i = 0; i < start && token.AsSpan(from, to - from).StartsWith(content, StringComparison.Ordinal); i++) from += content.Length;
            for (int i = 0; i < stop && token.AsSpan(from, to - from).EndsWith(content, StringComparison.Ordinal); i++) to -= content.Length;
            return token[from..to];
        }
    }

    sealed class MetaspaceDecoder(string replacement, bool prepends) : HfDecoder
    {
        public override List<string> DecodeChain(List<string> tokens)
        {
            var output = new List<string>(tokens.Count);
            for (int i = 0; i < tokens.Count; i++)
            {
                string t = tokens[i].Replace(replacement, " ", StringComparison.Ordinal);
                if (i == 0 && prepends && t.StartsWith(' ')) t = t[1..];
                output.Add(t);
            }
            return output;
        }
    }
}
