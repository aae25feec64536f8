using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using VectorLm.Analyzers.TrainerShape;
using VectorLm.Generators.Model;

namespace VectorLm.Generators;

public sealed partial class TrainerGenerator
{
    /// <summary>
    /// The collective call sites of the whole project (<c>optimizer.step()</c>, <c>clip_grad_norm_</c>,
    /// <c>clip_grad_value_</c>, <c>Generate</c>), wherever they are: trainer classes, helper classes, extension methods,
    /// local functions, lambdas. Each becomes an <c>[InterceptsLocation]</c> method that calls the runtime's
    /// <c>CollectiveInterceptors</c>, which is the plain call outside a distributed trainer.
    /// </summary>
    internal static class Interceptors
    {
        /// <summary>The interceptable calls of one file, in source order.</summary>
        public static EquatableArray<InterceptorSpec> ParseFile(SemanticModel model, CancellationToken ct)
        {
            var compilation = model.Compilation;
            // A project that cannot see the runtime has nothing to route calls to.
            if (compilation.GetTypeByMetadataName(TrainerShapeRules.CollectiveInterceptors) is null) return default;
            var sites = new List<InterceptorSpec>();
            foreach (var node in model.SyntaxTree.GetRoot(ct).DescendantNodes())
            {
                if (node is not InvocationExpressionSyntax invocation) continue;
                ct.ThrowIfCancellationRequested();
                if (Parse(model, invocation, ct) is { } site) sites.Add(site);
            }
            return new EquatableArray<InterceptorSpec>(sites);
        }

        static InterceptorSpec? Parse(SemanticModel model, InvocationExpressionSyntax invocation, CancellationToken ct)
        {
            // Cheap syntactic filter first: only calls with these names can be collective.
            var name = invocation.Expression switch
            {
                MemberAccessExpressionSyntax m => m.Name.Identifier.ValueText,
                MemberBindingExpressionSyntax b => b.Name.Identifier.ValueText,
                IdentifierNameSyntax i => i.Identifier.ValueText, // clip_grad_norm_ under 'using static'
                _ => null,
            };
            if (!TrainerShapeRules.IsInterceptableName(name)) return null;
            if (model.GetSymbolInfo(invocation, ct).Symbol is not IMethodSymbol method) return null;

            InterceptorKind kind;
            if (TrainerShapeRules.IsOptimizerStep(method)) kind = InterceptorKind.OptimizerStep;
            else if (TrainerShapeRules.IsGradientClip(method))
                kind = method.Name == TrainerShapeRules.ClipGradNorm ? InterceptorKind.ClipGradNorm : InterceptorKind.ClipGradValue;
            else if (TrainerShapeRules.IsSamplingGenerate(method, model.Compilation)) kind = InterceptorKind.Generate;
            else return null;

            // The interceptor names the declaring type; a type generated code cannot see cannot be intercepted (VLM0009 says so).
            if (!model.Compilation.IsSymbolAccessibleWithin(method.ContainingType, model.Compilation.Assembly)) return null;
            var location = model.GetInterceptableLocation(invocation, ct);
            if (location is null) return null;

            var line = invocation.Expression is MemberAccessExpressionSyntax access
                ? access.Name.GetLocation().GetLineSpan().StartLinePosition.Line + 1
                : invocation.GetLocation().GetLineSpan().StartLinePosition.Line + 1;
            return new InterceptorSpec
            {
                Kind = kind,
                Version = location.Version,
                Data = location.Data,
                DisplayLocation = location.GetDisplayLocation(),
                ReceiverType = method.ContainingType.ToDisplayString(Parser.TypeFormat),
                ReturnType = method.ReturnType.ToDisplayString(Parser.TypeFormat),
                Parameters = new EquatableArray<ParameterSpec>(method.Parameters.Select(p =>
                    new ParameterSpec { Name = p.Name, TypeName = p.Type.ToDisplayString(Parser.TypeFormat) })),
                CallerMember = CallerMemberName(model, invocation),
                CallerFile = invocation.SyntaxTree.FilePath,
                CallerLine = line,
            };
        }

        // What [CallerMemberName] gives at this point: the enclosing method, property or event, through lambdas and local functions.
        static string CallerMemberName(SemanticModel model, SyntaxNode node)
        {
            var symbol = model.GetEnclosingSymbol(node.SpanStart);
            while (symbol is IMethodSymbol { MethodKind: MethodKind.AnonymousFunction or MethodKind.LocalFunction })
                symbol = symbol.ContainingSymbol;
            return symbol switch
            {
                IMethodSymbol { AssociatedSymbol: { } associated } => associated.Name,
                IMethodSymbol { MethodKind: MethodKind.Constructor } => ".ctor",
                IMethodSymbol { MethodKind: MethodKind.StaticConstructor } => ".cctor",
                IMethodSymbol { MethodKind: MethodKind.Destructor } => "Finalize",
                null => "",
                _ => symbol.Name,
            };
        }

        /// <summary>The hint name of the one interceptors file of a project.</summary>
        public const string HintName = "VectorLm.Interceptors.g.cs";

        public static string Source(EquatableArray<InterceptorSpec> sites)
        {
            var w = Emitter.Header("the optimizer steps, gradient clips and Generate calls of this project");
            w.Line("namespace " + EmittedNames.InterceptsLocationNamespace);
            using (w.OpenBlock())
            {
                w.Line("// The compiler recognises this attribute by name; a file-local copy keeps it out of the user's API.");
                w.Line($"[{EmittedNames.AttributeUsage}({EmittedNames.AttributeTargetsMethod}, AllowMultiple = true)]");
                w.Line($"file sealed class InterceptsLocationAttribute : {EmittedNames.Attribute}");
                using (w.OpenBlock())
                    w.Line("public InterceptsLocationAttribute(int version, string data) { }");
            }
            w.Line();
            w.Line("namespace " + EmittedNames.GeneratedNamespace);
            using (w.OpenBlock())
            {
                w.Line("/// <summary>");
                w.Line("/// Routes the collective calls of this project through the distributed runtime: each <c>optimizer.step()</c>");
                w.Line("/// all-reduces gradients before stepping and marks samplers stale; each gradient clip averages gradients over");
                w.Line("/// ranks before clipping; each <c>Generate</c> syncs stale weights and samples the same completions on every");
                w.Line("/// rank. Outside a distributed trainer each is the plain call.");
                w.Line("/// </summary>");
                w.Line(Emitter.GeneratedCode);
                w.Line("file static class CollectiveCallInterceptors");
                using (w.OpenBlock())
                {
                    for (var i = 0; i < sites.Count; i++)
                    {
                        if (i > 0) w.Line();
                        Write(w, sites[i], i);
                    }
                }
            }
            return w.ToString();
        }

        static void Write(SourceWriter w, InterceptorSpec call, int index)
        {
            // The runtime's methods take the receiver (for instance methods) and the leading arguments of the
            // intercepted call; caller info is this call site.
            var (receiver, target, forwardedCount, what) = call.Kind switch
            {
                InterceptorKind.OptimizerStep => ("optimizer", "OptimizerStep", 1, "step()"),
                InterceptorKind.Generate => ("engine", "Generate", 2, "Generate(...)"),
                InterceptorKind.ClipGradNorm => (null, "ClipGradNorm", 3, "clip_grad_norm_(...)"),
                _ => ((string?)null, "ClipGradValue", 2, "clip_grad_value_(...)"),
            };
            var parameters = call.Parameters.Select(p => $"{p.TypeName} {Emitter.Identifier(p.Name)}").ToList();
            var arguments = call.Parameters.Take(forwardedCount).Select(p => Emitter.Identifier(p.Name)).ToList();
            if (receiver is not null)
            {
                parameters.Insert(0, $"this {call.ReceiverType} {receiver}");
                arguments.Insert(0, receiver);
            }
            arguments.Add($"{Emitter.Literal(call.CallerMember)}, {Emitter.Literal(call.CallerFile)}, {call.CallerLine.ToString(CultureInfo.InvariantCulture)}");
            w.Line($"// {call.DisplayLocation}: {what} in {call.CallerMember}");
            w.Line($"[{EmittedNames.InterceptsLocationAttribute}({call.Version.ToString(CultureInfo.InvariantCulture)}, {Emitter.Literal(call.Data)})]");
            w.Line($"public static {call.ReturnType} {target}{index.ToString(CultureInfo.InvariantCulture)}({string.Join(", ", parameters)})");
            w.Line($"    => {EmittedNames.CollectiveInterceptors}.{target}({string.Join(", ", arguments)});");
        }
    }
}
