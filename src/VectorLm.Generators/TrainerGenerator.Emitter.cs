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

        const string GeneratedCode = "[global::System.CodeDom.Compiler.GeneratedCode(\"VectorLm.Generators\", \"{0}\")]";

        public static void EmitTrainer(SourceProductionContext context, TrainerSpec spec)
        {
            context.AddSource(HintPrefix(spec) + ".Trainer.g.cs", SourceText.From(TrainerSource(spec), Encoding.UTF8));
            if (spec.Interceptors.Count > 0)
                context.AddSource(HintPrefix(spec) + ".Interceptors.g.cs", SourceText.From(InterceptorsSource(spec), Encoding.UTF8));
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

        public static string InterceptorsSource(TrainerSpec spec)
        {
            var w = Header();
            w.Line("namespace System.Runtime.CompilerServices");
            using (w.OpenBlock())
            {
                w.Line("// The compiler recognises this attribute by name; a file-local copy keeps it out of the user's API.");
                w.Line("[global::System.AttributeUsage(global::System.AttributeTargets.Method, AllowMultiple = true)]");
                w.Line("file sealed class InterceptsLocationAttribute : global::System.Attribute");
                using (w.OpenBlock())
                    w.Line("public InterceptsLocationAttribute(int version, string data) { }");
            }
            w.Line();
            w.Line("namespace VectorLm.Generated");
            using (w.OpenBlock())
            {
                w.Line("/// <summary>");
                w.Line($"/// Routes the collective calls of <see cref=\"{spec.GlobalName}\"/> through the distributed runtime: each");
                w.Line("/// <c>optimizer.step()</c> all-reduces gradients before stepping and marks samplers stale; each <c>Generate</c>");
                w.Line("/// syncs stale weights and samples the same completions on every rank.");
                w.Line("/// </summary>");
                w.Line(string.Format(CultureInfo.InvariantCulture, GeneratedCode, Version));
                w.Line($"file static class {spec.ClassName}Interceptors");
                using (w.OpenBlock())
                {
                    for (var i = 0; i < spec.Interceptors.Count; i++)
                    {
                        if (i > 0) w.Line();
                        WriteInterceptor(w, spec.Interceptors[i], i);
                    }
                }
            }
            return w.ToString();
        }

        static void WriteInterceptor(SourceWriter w, InterceptorSpec call, int index)
        {
            var (receiver, target) = call.Kind == InterceptorKind.OptimizerStep
                ? ("optimizer", "OptimizerStep")
                : ("engine", "Generate");
            var parameters = string.Join(", ", call.Parameters.Select(p => $"{p.TypeName} {Identifier(p.Name)}"));
            var callerInfo = $"{Literal(call.CallerMember)}, {Literal(call.CallerFile)}, {call.CallerLine.ToString(CultureInfo.InvariantCulture)}";
            // OptimizerStep(optimizer, closure, ...) and Generate(engine, prompts, parameters, ...): the runtime's
            // methods take the leading arguments of the intercepted call; caller info is this call site.
            var forwarded = string.Join(", ", call.Parameters.Take(call.Kind == InterceptorKind.OptimizerStep ? 1 : 2).Select(p => Identifier(p.Name)));
            w.Line($"// {call.DisplayLocation}: {(call.Kind == InterceptorKind.OptimizerStep ? "step()" : "Generate(...)")} in {call.CallerMember}");
            w.Line($"[global::System.Runtime.CompilerServices.InterceptsLocation({call.Version.ToString(CultureInfo.InvariantCulture)}, {Literal(call.Data)})]");
            w.Line($"public static {call.ReturnType} {target}{index.ToString(CultureInfo.InvariantCulture)}(this {call.ReceiverType} {receiver}{(parameters.Length > 0 ? ", " + parameters : "")})");
            w.Line($"    => global::VectorLm.Hosting.CollectiveInterceptors.{target}({receiver}, {forwarded}, {callerInfo});");
        }

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

        static SourceWriter Header() => new SourceWriter()
            .Line("// <auto-generated/>")
            .Line("// Generated by VectorLm.Generators (TrainerGenerator) from a [DistributedTrainer] class. Do not edit.")
            .Line("#nullable enable")
            .Line();

        static string Literal(string? value) =>
            value is null ? "null" : SymbolDisplay.FormatLiteral(value, quote: true);

        // Parameter names that are C# keywords (none today in TorchSharp or VectorLm) stay valid.
        static string Identifier(string name) =>
            SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;
    }
}
