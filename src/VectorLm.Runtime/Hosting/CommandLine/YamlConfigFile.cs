using System.ComponentModel;
using System.Globalization;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace VectorLm.Hosting.CommandLine;

/// <summary>
/// Reads a trainer config file: a YAML mapping from option names (without dashes) to a scalar or a sequence of
/// scalars. Values stay text; the trainer's command-line options parse them. Only the generated command line uses it.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public static class YamlConfigFile
{
    /// <summary>Reads <paramref name="path"/> into (key, values) pairs in file order. A scalar gives one value, <c>null</c> or <c>~</c> none.</summary>
    /// <exception cref="YamlConfigException">The file is not a mapping of scalars or scalar sequences, or repeats a key.</exception>
    public static IReadOnlyList<KeyValuePair<string, IReadOnlyList<string>>> Read(string path)
    {
        using var reader = File.OpenText(path);
        return Parse(reader);
    }

    /// <summary>Parses YAML text; see <see cref="Read"/>.</summary>
    public static IReadOnlyList<KeyValuePair<string, IReadOnlyList<string>>> Parse(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var stream = new YamlStream();
        try
        {
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new YamlConfigException($"invalid YAML at line {e.Start.Line}: {e.Message}", e);
        }
        var entries = new List<KeyValuePair<string, IReadOnlyList<string>>>();
        if (stream.Documents.Count == 0) return entries;
        if (stream.Documents.Count > 1) throw new YamlConfigException($"expected one YAML document, found {stream.Documents.Count}");
        var root = stream.Documents[0].RootNode;
        if (root is YamlScalarNode { Value: null or "" }) return entries;
        if (root is not YamlMappingNode mapping)
            throw new YamlConfigException($"expected a mapping of option names to values at line {root.Start.Line}, found a {root.NodeType}");

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in mapping.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { Length: > 0 } key })
                throw new YamlConfigException($"expected an option name as key at line {keyNode.Start.Line}");
            if (!seen.Add(key)) throw new YamlConfigException($"the key '{key}' appears twice");
            entries.Add(new(key, Values(key, valueNode)));
        }
        return entries;
    }

    static IReadOnlyList<string> Values(string key, YamlNode node) => node switch
    {
        YamlScalarNode scalar when IsNull(scalar) => [],
        YamlScalarNode scalar => [scalar.Value!],
        YamlSequenceNode sequence => sequence.Children.Select(item => item is YamlScalarNode { Value: { } v } && !IsNull((YamlScalarNode)item)
            ? v
            : throw new YamlConfigException($"the key '{key}' must hold scalars, found a {item.NodeType} at line {item.Start.Line}")).ToArray(),
        _ => throw new YamlConfigException(
            $"the key '{key}' must hold a scalar or a sequence of scalars, found a {node.NodeType} at line {node.Start.Line.ToString(CultureInfo.InvariantCulture)}"),
    };

    // Plain (unquoted) null, ~ or an empty value mean "no value"; a quoted "null" is the string.
    static bool IsNull(YamlScalarNode scalar) =>
        scalar.Style == ScalarStyle.Plain && scalar.Value is null or "" or "~" or "null" or "Null" or "NULL";
}

/// <summary>A config file that is valid YAML but not a mapping of option names to scalars or scalar sequences.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public sealed class YamlConfigException(string message, Exception? inner = null) : Exception(message, inner);
