using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using VectorLm.Analyzers.Collectives;
using VectorLm.Analyzers.CodeFixes;

namespace VectorLm.Analyzers.Tests;

/// <summary>Runs the deadlock analyzer (and its code fix) on test sources that reference VectorLm and TorchSharp.</summary>
public static class Verify
{
    /// <summary>The usings and members every <see cref="Body"/> test can use.</summary>
    public const string Prelude = """
        using System;
        using System.Collections.Generic;
        using System.Linq;
        using System.Threading;
        using System.Threading.Tasks;
        using TorchSharp;
        using VectorLm;
        using VectorLm.Sampling;
        using static TorchSharp.torch;
        """;

    /// <summary>Wraps statements into a method of a class with <c>ctx</c>, <c>sampler</c>, prompts and a gradient.</summary>
    public static string Body(string statements) => Prelude + "\n" + $$"""
        class Subject
        {
            TrainerContext ctx = null!;
            ISamplingEngine sampler = null!;
            IReadOnlyList<string> p = null!, a = null!, b = null!;
            Tensor g = null!;
            void Log() { }
            void Save() { }
            bool Ask() => true;

            void Run(int step, int every)
            {
        {{statements}}
            }
        }
        """;

    /// <summary>Metadata references: the running framework, VectorLm.Runtime and TorchSharp.</summary>
    public static readonly ImmutableArray<MetadataReference> References = BuildReferences();

    static ImmutableArray<MetadataReference> BuildReferences()
    {
        var paths = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var frameworkDir = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        foreach (var dll in Directory.GetFiles(frameworkDir, "*.dll"))
        {
            var name = Path.GetFileName(dll);
            if (name.StartsWith("System.", StringComparison.Ordinal) || name is "mscorlib.dll" or "netstandard.dll")
                paths.TryAdd(name, dll);
        }
        foreach (var assembly in new[] { typeof(TrainerContext).Assembly, typeof(TorchSharp.torch).Assembly })
            paths.TryAdd(Path.GetFileName(assembly.Location), assembly.Location);
        return paths.Values.Where(IsManaged).Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
    }

    /// <summary>True for a .NET assembly (with metadata), false for a native library of the same folder.</summary>
    internal static bool IsManaged(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            using var reader = new System.Reflection.PortableExecutable.PEReader(stream);
            return reader.HasMetadata;
        }
        catch (BadImageFormatException)
        {
            return false;
        }
    }

    /// <summary>Asserts the markup's diagnostics (<c>{|VLM1001:...|}</c>) are exactly those reported.</summary>
    public static Task Analyzer(string source, params DiagnosticResult[] expected)
    {
        var test = new AnalyzerTest { TestCode = source };
        test.ExpectedDiagnostics.AddRange(expected);
        return test.RunAsync();
    }

    /// <summary>Asserts the diagnostics, then that the code fix (one at a time and fix-all) gives <paramref name="fixedSource"/>.</summary>
    public static Task CodeFix(string source, string fixedSource, int? iterations = null)
    {
        var test = new CodeFixTest { TestCode = source, FixedCode = fixedSource };
        if (iterations is { } n)
        {
            test.NumberOfIncrementalIterations = n;
            test.NumberOfFixAllIterations = 1;
        }
        return test.RunAsync();
    }

    static void Configure(ProjectState state)
    {
        state.AdditionalReferences.AddRange(References);
    }

    public sealed class AnalyzerTest : CSharpAnalyzerTest<CollectiveDeadlockAnalyzer, DefaultVerifier>
    {
        public AnalyzerTest()
        {
            ReferenceAssemblies = new ReferenceAssemblies("net10.0");
            // VLM1001-VLM1003 have a certain and a probable descriptor under one ID; markup names only the ID.
            MarkupOptions = MarkupOptions.UseFirstDescriptor;
            Configure(TestState);
        }
    }

    public sealed class CodeFixTest : CSharpCodeFixTest<CollectiveDeadlockAnalyzer, HoistCollectiveCodeFix, DefaultVerifier>
    {
        public CodeFixTest()
        {
            ReferenceAssemblies = new ReferenceAssemblies("net10.0");
            MarkupOptions = MarkupOptions.UseFirstDescriptor;
            Configure(TestState);
            Configure(FixedState);
            Configure(BatchFixedState);
        }
    }
}
