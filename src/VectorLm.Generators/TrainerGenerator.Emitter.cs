using System.Globalization;
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

        internal const string GeneratedCode = "[global::System.CodeDom.Compiler.GeneratedCode(\"VectorLm.Generators\", \"{0}\")]";

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
            w.Line($"/// <see cref=\"{(spec.TrainKind == TrainKind.Async ? "TrainAsync" : "Train")}\"/> on every rank through <see cref=\"global::VectorLm.Hosting.TrainerHost\"/>.");
            w.Line("/// </summary>");
            w.Line("/// <param name=\"args\">The command-line arguments; <c>--help</c> lists them.</param>");
            w.Line("/// <returns>The process exit code: 0 on success.</returns>");
            w.Line(string.Format(CultureInfo.InvariantCulture, GeneratedCode, Version));
            w.Line("public static int Run(string[] args)");
            using (w.OpenBlock())
            {
                if (spec.Options.Count > 0)
                {
                    w.Line("// Option defaults are the property initializers: read them from a fresh instance.");
                    w.Line($"var defaults = new {spec.GlobalName}();");
                }
                w.Line($"var commandLine = new global::VectorLm.Hosting.CommandLine.TrainerCommandLine({Literal(spec.ClassName)}, {Literal(spec.Description)});");
                foreach (var option in spec.Options)
                    w.Line($"var {OptionVariable(option)} = commandLine.AddOption<{option.TypeName}>({Literal(option.OptionName)}, {Literal(option.Description)}, defaults.{option.PropertyName});");
                w.Line("return commandLine.Invoke(args, (parsed, launch) =>");
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
                                w.Line($"{option.PropertyName} = parsed.GetValue({OptionVariable(option)}){(option.NeedsNullForgiving ? "!" : "")},");
                    }
                    if (spec.TrainKind == TrainKind.Async)
                    {
                        w.Line("return global::VectorLm.Hosting.TrainerHost.Run(launch, (context, cancellationToken) => trainer.TrainAsync(context, cancellationToken));");
                    }
                    else
                    {
                        w.Line("return global::VectorLm.Hosting.TrainerHost.Run(launch, (context, cancellationToken) =>");
                        using (w.OpenBlock(");"))
                        {
                            w.Line(spec.TrainKind == TrainKind.SyncCancellable ? "trainer.Train(context, cancellationToken);" : "trainer.Train(context);");
                            w.Line("return global::System.Threading.Tasks.Task.CompletedTask;");
                        }
                    }
                }
            }
        }

        static string OptionVariable(OptionSpec option) => "option" + option.PropertyName;

        public static string EntryPointSource(EntryPointSpec spec)
        {
            var w = Header();
            w.Line("namespace VectorLm.Generated");
            using (w.OpenBlock())
            {
                w.Line($"/// <summary>The program's entry point: runs <see cref=\"{spec.TrainerGlobalName}\"/>.</summary>");
                w.Line(string.Format(CultureInfo.InvariantCulture, GeneratedCode, Version));
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
