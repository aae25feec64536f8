using System.Linq;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;
using VectorLm.Generators.Model;

namespace VectorLm.Generators;

public sealed partial class TrainerGenerator
{
    /// <summary>Models to C# text. Culture-invariant; reads nothing but the model.</summary>
    internal static class Emitter
    {
        /// <summary>The generator's version, written into [GeneratedCode] (tests mask it).</summary>
        public static readonly string Version = typeof(TrainerGenerator).Assembly.GetName().Version?.ToString() ?? "0.0.0.0";

        /// <summary>The <c>[GeneratedCode]</c> line of every generated member.</summary>
        internal static readonly string GeneratedCode = $"[{EmittedNames.GeneratedCodeAttribute}(\"VectorLm.Generators\", \"{Version}\")]";

        public static void EmitTrainer(SourceProductionContext context, TrainerSpec spec)
        {
            context.AddSource(HintPrefix(spec) + ".Trainer.g.cs", SourceText.From(TrainerSource(spec), Encoding.UTF8));
        }

        public static void EmitEntryPoint(SourceProductionContext context, EntryPointSpec spec) =>
            context.AddSource("VectorLm.EntryPoint.g.cs", SourceText.From(EntryPointSource(spec), Encoding.UTF8));

        static string HintPrefix(TrainerSpec spec) => spec.FullName;

        public static string TrainerSource(TrainerSpec spec)
        {
            var w = Header();
            if (spec.Namespace.Length > 0)
            {
                w.Line("namespace " + spec.Namespace);
                using (w.OpenBlock()) WriteTrainerClass(w, spec);
            }
            else
            {
                WriteTrainerClass(w, spec);
            }
            return w.ToString();
        }

        static void WriteTrainerClass(SourceWriter w, TrainerSpec spec)
        {
            w.Line("partial class " + spec.ClassName);
            using var _ = w.OpenBlock();
            w.Line("/// <summary>");
            w.Line("/// Parses the command line (launch options, <c>--config</c> and the [Option] properties) and runs");
            w.Line($"/// <see cref=\"{(spec.TrainKind == TrainKind.Async ? "TrainAsync" : "Train")}\"/> on every rank through <see cref=\"{EmittedNames.TrainerHost}\"/>.");
            w.Line("/// </summary>");
            w.Line("/// <param name=\"args\">The command-line arguments; <c>--help</c> lists them.</param>");
            w.Line("/// <returns>The process exit code: 0 on success.</returns>");
            w.Line(GeneratedCode);
            w.Line("public static int Run(string[] args)");
            using (w.OpenBlock())
            {
                if (spec.Options.Count > 0)
                {
                    w.Line("// Option defaults are the property initializers: read them from a fresh instance.");
                    w.Line($"var defaults = new {spec.GlobalName}();");
                }
                w.Line($"var commandLine = new {EmittedNames.TrainerCommandLine}({Literal(spec.ClassName)}, {Literal(spec.Description)});");
                foreach (var option in spec.Options)
                {
                    // The property's validation attributes, recreated: the runtime checks every value against them.
                    var constraints = string.Concat(option.Constraints.Select(c => ", " + c));
                    w.Line($"var {OptionVariable(option)} = commandLine.AddOption<{option.TypeName}>({Literal(option.OptionName)}, {Literal(option.Description)}, defaults.{option.PropertyName}{constraints});");
                }
                w.Line("return commandLine.Invoke(args, arguments =>");
                using (w.OpenBlock(");"))
                {
                    var newTrainer = spec.IsDisposable ? "using var trainer" : "var trainer";
                    if (spec.Options.Count == 0)
                    {
                        w.Line($"{newTrainer} = new {spec.GlobalName}();");
                    }
                    else
                    {
                        w.Line($"{newTrainer} = new {spec.GlobalName}");
                        using (w.OpenBlock(";"))
                            foreach (var option in spec.Options)
                                w.Line($"{option.PropertyName} = arguments.GetValue({OptionVariable(option)}),");
                    }
                    if (spec.TrainKind == TrainKind.Async)
                    {
                        w.Line($"return {EmittedNames.TrainerHost}.Run(arguments.Launch, (context, cancellationToken) => trainer.TrainAsync(context, cancellationToken));");
                    }
                    else
                    {
                        w.Line($"return {EmittedNames.TrainerHost}.Run(arguments.Launch, (context, cancellationToken) =>");
                        using (w.OpenBlock(");"))
                        {
                            w.Line(spec.TrainKind == TrainKind.SyncCancellable ? "trainer.Train(context, cancellationToken);" : "trainer.Train(context);");
                            w.Line($"return {EmittedNames.CompletedTask};");
                        }
                    }
                }
            }
        }

        static string OptionVariable(OptionSpec option) => "option" + option.PropertyName;

        public static string EntryPointSource(EntryPointSpec spec)
        {
            var w = Header();
            w.Line("namespace " + EmittedNames.GeneratedNamespace);
            using (w.OpenBlock())
            {
                w.Line($"/// <summary>The program's entry point: runs <see cref=\"{spec.TrainerGlobalName}\"/>.</summary>");
                w.Line(GeneratedCode);
                w.Line("internal static class TrainerEntryPoint");
                using (w.OpenBlock())
                {
                    w.Line("/// <summary>Runs the trainer with the process's command line and returns its exit code.</summary>");
                    w.Line($"public static int Main(string[] args) => {spec.TrainerGlobalName}.Run(args);");
                }
            }
            return w.ToString();
        }

        internal static SourceWriter Header(string from = "a [DistributedTrainer] class") => new SourceWriter()
            .Line("// <auto-generated/>")
            .Line($"// Generated by VectorLm.Generators (TrainerGenerator) from {from}. Do not edit.")
            .Line("#nullable enable")
            .Line();

        internal static string Literal(string? value) =>
            value is null ? "null" : SymbolDisplay.FormatLiteral(value, quote: true);

        // Parameter names that are C# keywords (none today in TorchSharp or VectorLm) stay valid.
        internal static string Identifier(string name) =>
            SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;
    }
}
