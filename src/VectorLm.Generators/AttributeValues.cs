using System.Globalization;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace VectorLm.Generators;

/// <summary>Attribute arguments (typed constants) as C# expressions of the same type and value, for recreating an attribute in generated code.</summary>
internal static class AttributeValues
{
    public static string Expression(TypedConstant constant)
    {
        if (constant.IsNull) return constant.Kind == TypedConstantKind.Array ? $"({TypeName(constant.Type!)})null" : "null";
        switch (constant.Kind)
        {
            case TypedConstantKind.Array:
                var element = ((IArrayTypeSymbol)constant.Type!).ElementType;
                // Reference-typed elements may be null ([AllowedValues("a", null)]); generated code is nullable-enabled.
                var elementName = TypeName(element) + (element.IsReferenceType ? "?" : "");
                return $"new {elementName}[] {{ {string.Join(", ", constant.Values.Select(Expression))} }}";
            case TypedConstantKind.Type:
                return $"typeof({TypeName((ITypeSymbol)constant.Value!)})";
            case TypedConstantKind.Enum:
                return $"({TypeName(constant.Type!)})({Primitive(constant.Value!)})";
            default:
                return Primitive(constant.Value!);
        }
    }

    static string TypeName(ITypeSymbol type) => type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);

    // A literal of exactly the constant's type: a suffix or a cast where C# would infer another one, so that a value
    // boxed into object (params object[] of [AllowedValues]) keeps its type.
    static string Primitive(object value) => value switch
    {
        string s => SymbolDisplay.FormatLiteral(s, quote: true),
        char c => SymbolDisplay.FormatLiteral(c, quote: true),
        bool b => b ? "true" : "false",
        double d when double.IsNaN(d) => "double.NaN",
        double d when double.IsPositiveInfinity(d) => "double.PositiveInfinity",
        double d when double.IsNegativeInfinity(d) => "double.NegativeInfinity",
        double d => d.ToString("R", CultureInfo.InvariantCulture) + "D",
        float f when float.IsNaN(f) => "float.NaN",
        float f when float.IsPositiveInfinity(f) => "float.PositiveInfinity",
        float f when float.IsNegativeInfinity(f) => "float.NegativeInfinity",
        float f => f.ToString("R", CultureInfo.InvariantCulture) + "F",
        long l => l.ToString(CultureInfo.InvariantCulture) + "L",
        ulong u => u.ToString(CultureInfo.InvariantCulture) + "UL",
        uint u => u.ToString(CultureInfo.InvariantCulture) + "U",
        int i => i.ToString(CultureInfo.InvariantCulture),
        short s => $"(short)({s.ToString(CultureInfo.InvariantCulture)})",
        ushort s => $"(ushort){s.ToString(CultureInfo.InvariantCulture)}",
        byte b => $"(byte){b.ToString(CultureInfo.InvariantCulture)}",
        sbyte b => $"(sbyte)({b.ToString(CultureInfo.InvariantCulture)})",
        _ => SymbolDisplay.FormatPrimitive(value, quoteStrings: true, useHexadecimalNumbers: false),
    };
}
