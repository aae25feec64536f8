using System;
using System.Text;

namespace VectorLm.Generators;

/// <summary>Writes C# text line by line with four-space indentation (no SyntaxFactory, no NormalizeWhitespace).</summary>
internal sealed class SourceWriter
{
    readonly StringBuilder _text = new();
    int _indent;

    /// <summary>Appends one line at the current indentation; an empty line has no trailing spaces.</summary>
    public SourceWriter Line(string text = "")
    {
        if (text.Length > 0) _text.Append(' ', _indent * 4).Append(text);
        _text.Append('\n');
        return this;
    }

    /// <summary>Writes <c>{</c> and indents; dispose the result to write <c>}</c> (plus <paramref name="closingSuffix"/>).</summary>
    public Block OpenBlock(string closingSuffix = "")
    {
        Line("{");
        _indent++;
        return new Block(this, closingSuffix);
    }

    /// <inheritdoc />
    public override string ToString() => _text.ToString();

    internal readonly struct Block(SourceWriter writer, string closingSuffix) : IDisposable
    {
        public void Dispose()
        {
            writer._indent--;
            writer.Line("}" + closingSuffix);
        }
    }
}
