using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Xml.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using VectorLm.Analyzers.TrainerShape;
using VectorLm.Generators.Model;

namespace VectorLm.Generators;

public sealed partial class TrainerGenerator
{
    /// <summary>Symbols and syntax to <see cref="TrainerSpec"/>. Nothing here throws on user code or keeps a symbol.</summary>
    internal static class Parser
    {
        // Fully qualified names with nullable annotations ("string?", "global::System.IO.FileInfo").
        internal static readonly SymbolDisplayFormat TypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        public static TrainerSpec? Parse(GeneratorAttributeSyntaxContext context, CancellationToken ct)
        {
            if (context.TargetSymbol is not INamedTypeSymbol type) return null;
            var ns = type.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : "";
            var fullName = ns.Length == 0 ? type.Name : ns + "." + type.Name;
            var kind = TrainerShapeRules.FindTrainMethod(type, out _);
            var options = ParseOptions(type, out var optionsValid);
            var valid = TrainerShapeRules.IsPartial(type) && TrainerShapeRules.ClassShapeProblem(type) is null
                && kind != TrainMethodKind.None && optionsValid;
            if (!valid)
                return new TrainerSpec { Namespace = ns, ClassName = type.Name, FullName = fullName, IsValid = false };

            return new TrainerSpec
            {
                Namespace = ns,
                ClassName = type.Name,
                FullName = fullName,
                IsValid = true,
                Description = DocSummary(type, ct),
                TrainKind = kind switch { TrainMethodKind.Async => TrainKind.Async, TrainMethodKind.SyncCancellable => TrainKind.SyncCancellable, _ => TrainKind.Sync },
                IsDisposable = type.AllInterfaces.Any(i => i.SpecialType == SpecialType.System_IDisposable),
                Options = new EquatableArray<OptionSpec>(options),
            };
        }

        static List<OptionSpec> ParseOptions(INamedTypeSymbol type, out bool valid)
        {
            valid = true;
            var options = new List<OptionSpec>();
            var names = new HashSet<string>(TrainerShapeRules.ReservedOptionNames, StringComparer.Ordinal);
            foreach (var (property, attribute) in TrainerShapeRules.OptionProperties(type))
            {
                var name = TrainerShapeRules.OptionName(property, attribute);
                if (TrainerShapeRules.SetterProblem(property) is not null || !TrainerShapeRules.IsSupportedOptionType(property.Type)
                    || !names.Add(name))
                {
                    valid = false;
                    continue;
                }
                string? description = null;
                foreach (var named in attribute.NamedArguments)
                    if (named.Key == nameof(VectorLm.Analyzers.Shared.OptionAttribute.Description) && named.Value.Value is string text) description = text;
                description ??= DocSummary(property, default);
                options.Add(new OptionSpec
                {
                    PropertyName = property.Name,
                    OptionName = "--" + name,
                    TypeName = property.Type.ToDisplayString(TypeFormat),
                    Description = description,
                    Constraints = new EquatableArray<string>(Constraints(property)),
                });
            }
            return options;
        }

        // The property's System.ComponentModel.DataAnnotations.ValidationAttribute-derived attributes ([Range],
        // [Required], [MustExist], a user's own...), each as the C# expression that recreates it.
        static IEnumerable<string> Constraints(IPropertySymbol property)
        {
            foreach (var attribute in property.GetAttributes())
            {
                if (attribute.AttributeClass is not { } type || !TrainerShapeRules.DerivesFrom(type, ValidationAttribute)) continue;
                // An attribute that does not bind is the compiler's error to report.
                if (attribute.AttributeConstructor is null || attribute.ConstructorArguments.Any(a => a.Kind == TypedConstantKind.Error)
                    || attribute.NamedArguments.Any(a => a.Value.Kind == TypedConstantKind.Error))
                    continue;
                var arguments = string.Join(", ", attribute.ConstructorArguments.Select(AttributeValues.Expression));
                var expression = $"new {type.ToDisplayString(TypeFormat)}({arguments})";
                if (attribute.NamedArguments.Length > 0)
                    expression += " { " + string.Join(", ", attribute.NamedArguments.Select(a => a.Key + " = " + AttributeValues.Expression(a.Value))) + " }";
                yield return expression;
            }
        }

        /// <summary>The base class of the constraints an option honours.</summary>
        internal const string ValidationAttribute = "System.ComponentModel.DataAnnotations.ValidationAttribute";

        // The <summary> text of the XML doc comment, whitespace collapsed. Read from syntax so that it works whether or
        // not the project parses documentation comments.
        static string? DocSummary(ISymbol symbol, CancellationToken ct)
        {
            foreach (var reference in symbol.DeclaringSyntaxReferences)
            {
                var lines = new List<string>();
                foreach (var trivia in reference.GetSyntax(ct).GetLeadingTrivia())
                {
                    if (trivia.IsKind(SyntaxKind.SingleLineDocumentationCommentTrivia))
                        lines.AddRange(trivia.ToFullString().Split('\n'));
                    else if (trivia.IsKind(SyntaxKind.SingleLineCommentTrivia) && trivia.ToString().StartsWith("///", StringComparison.Ordinal))
                        lines.Add(trivia.ToString());
                }
                if (lines.Count == 0) continue;
                var xml = string.Join("\n", lines.Select(l => l.Trim()).Select(l => l.StartsWith("///", StringComparison.Ordinal) ? l.Substring(3) : l));
                try
                {
                    var summary = XElement.Parse("<doc>" + xml + "</doc>").Element("summary");
                    if (summary is null) continue;
                    var text = string.Join(" ", string.Concat(summary.DescendantNodes().Select(NodeText))
                        .Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
                    return text.Length == 0 ? null : text;
                }
                catch (System.Xml.XmlException)
                {
                    // Malformed doc XML is the compiler's warning to give (CS1570); the option just has no description.
                    return null;
                }
            }
            return null;
        }

        // Text of a doc node: plain text, and the names in <see cref="..."/> and <paramref name="..."/>.
        static string NodeText(XNode node) => node switch
        {
            XText text => text.Value,
            XElement { IsEmpty: true } e => (string?)e.Attribute("cref") is { } cref ? cref.Substring(cref.IndexOf(':') + 1)
                : (string?)e.Attribute("name") ?? (string?)e.Attribute("langword") ?? "",
            _ => "",
        };
    }
}
