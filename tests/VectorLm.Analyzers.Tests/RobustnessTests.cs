using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Text.RegularExpressions;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using VectorLm.Analyzers.Collectives;

namespace VectorLm.Analyzers.Tests;

/// <summary>
/// The analyzer must never throw: not on the test sources with random pieces cut out (broken, half-typed code), and
/// not on this repository's own sources.
/// </summary>
public class RobustnessTests
{
    static readonly CSharpParseOptions Parse = new(LanguageVersion.Preview);

    [Fact]
    public async Task TestSourcesWithRandomDeletions()
    {
        var sources = TestSources();
        Assert.True(sources.Count >= 50, $"expected the test files' sources, found {sources.Count}");
        var random = new Random(20261127);
        // Each source in its own namespace, so that many fit in one compilation (one compilation per batch keeps it fast).
        var intact = sources.Select((s, i) => $"namespace Case{i};\n{s}").ToList();
        var damaged = intact.SelectMany(s => Enumerable.Range(0, 3).Select(_ => Damage(s, random))).ToList();
        int intactFindings = 0;
        foreach (var batch in intact.Chunk(25))
            intactFindings += (await Analyze(batch, Verify.References)).Count(d => d.Id.StartsWith("VLM", StringComparison.Ordinal));
        foreach (var batch in damaged.Chunk(25))
            await Analyze(batch, Verify.References);
        // The sources do exercise the analysis: intact, they produce findings.
        Assert.True(intactFindings > 50, $"only {intactFindings} findings on the intact test sources");
    }

    [Fact]
    public async Task RepositorySources()
    {
        var root = RepositoryRoot();
        var files = Directory.GetFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                        && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();
        Assert.NotEmpty(files);
        var references = Directory.GetFiles(AppContext.BaseDirectory, "*.dll")
            .Where(Verify.IsManaged)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .Concat(Verify.References)
            .ToImmutableArray();
        // One compilation per project folder, as the build sees them (plus their mistakes against missing references).
        foreach (var project in files.GroupBy(f => Path.GetRelativePath(Path.Combine(root, "src"), f).Split(Path.DirectorySeparatorChar)[0]))
            await Analyze(project.Select(File.ReadAllText).ToArray(), references);
    }

    static async Task<ImmutableArray<Diagnostic>> Analyze(string[] sources, ImmutableArray<MetadataReference> references)
    {
        var trees = sources.Select((s, i) => CSharpSyntaxTree.ParseText(s, Parse, path: $"Source{i}.cs")).ToArray();
        var compilation = CSharpCompilation.Create("Robustness", trees, references,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true));
        var exceptions = new ConcurrentBag<Exception>();
        var options = new CompilationWithAnalyzersOptions(
            new AnalyzerOptions(ImmutableArray<AdditionalText>.Empty),
            onAnalyzerException: (e, _, _) => exceptions.Add(e),
            concurrentAnalysis: false,
            logAnalyzerExecutionTime: false);
        var withAnalyzers = compilation.WithAnalyzers(ImmutableArray.Create<DiagnosticAnalyzer>(new CollectiveDeadlockAnalyzer()), options);
        var diagnostics = await withAnalyzers.GetAnalyzerDiagnosticsAsync();
        var crash = diagnostics.FirstOrDefault(d => d.Id == "AD0001");
        Assert.True(crash is null && exceptions.IsEmpty,
            $"analyzer threw: {crash?.GetMessage()}{string.Join("\n", exceptions)}\n--- source ---\n{string.Join("\n---\n", sources)}");
        return diagnostics;
    }

    /// <summary>Cuts one to three random pieces (a few characters up to a few tokens) out of a source.</summary>
    static string Damage(string source, Random random)
    {
        var text = source;
        int cuts = random.Next(1, 4);
        for (int i = 0; i < cuts && text.Length > 2; i++)
        {
            int start = random.Next(text.Length - 1);
            int length = Math.Min(random.Next(1, 24), text.Length - start);
            text = text.Remove(start, length);
        }
        return text;
    }

    /// <summary>Every C# source in this project's tests: the raw string literals of its test files, markup removed.</summary>
    static List<string> TestSources()
    {
        var folder = Path.Combine(RepositoryRoot(), "tests", "VectorLm.Analyzers.Tests");
        var markup = new Regex(@"\{\|VLM\d+:|\|\}", RegexOptions.CultureInvariant);
        var sources = new List<string>();
        foreach (var file in Directory.GetFiles(folder, "*Tests.cs"))
        {
            var tree = CSharpSyntaxTree.ParseText(File.ReadAllText(file), Parse);
            foreach (var token in tree.GetRoot().DescendantTokens())
            {
                if (!token.IsKind(SyntaxKind.MultiLineRawStringLiteralToken) && !token.IsKind(SyntaxKind.StringLiteralToken)) continue;
                var value = markup.Replace(token.ValueText, "");
                if (!value.Contains("ctx", StringComparison.Ordinal)) continue;
                sources.Add(value.Contains("class ", StringComparison.Ordinal) ? (value.Contains("using VectorLm;", StringComparison.Ordinal) ? value : Verify.Prelude + "\n" + value) : Verify.Body(value));
            }
        }
        return sources;
    }

    static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"VectorLm.sln not found above {AppContext.BaseDirectory}");
    }
}

/// <summary>Each rule has its page under docs/rules and links to it; the release files track it.</summary>
public class RuleDocumentationTests
{
    [Fact]
    public void EveryRuleHasAHelpPageAndARelease()
    {
        var root = RepositoryRootLocator.Find();
        var unshipped = File.ReadAllText(Path.Combine(root, "src", "VectorLm.Analyzers", "AnalyzerReleases.Unshipped.md"));
        foreach (var rule in new CollectiveDeadlockAnalyzer().SupportedDiagnostics)
        {
            Assert.Equal($"https://github.com/vectorlm/vectorlm/blob/main/docs/rules/{rule.Id}.md", rule.HelpLinkUri);
            var page = Path.Combine(root, "docs", "rules", rule.Id + ".md");
            Assert.True(File.Exists(page), $"missing {page}");
            Assert.StartsWith($"# {rule.Id}: {rule.Title}", File.ReadAllText(page), StringComparison.Ordinal);
            Assert.Contains($"{rule.Id} | {rule.Category} | {rule.DefaultSeverity}", unshipped, StringComparison.Ordinal);
        }
    }
}

static class RepositoryRootLocator
{
    public static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "VectorLm.sln"))) return dir.FullName;
        throw new InvalidOperationException($"VectorLm.sln not found above {AppContext.BaseDirectory}");
    }
}
