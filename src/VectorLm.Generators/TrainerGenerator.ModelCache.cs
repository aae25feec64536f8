using System.Collections.Immutable;
using System.Linq;
using System.Runtime.CompilerServices;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using VectorLm.Generators.Model;

namespace VectorLm.Generators;

public sealed partial class TrainerGenerator
{
    /// <summary>
    /// Reuses models across compilations that differ only inside member bodies of other files: a file's intercepted
    /// call sites, and a trainer's model.
    /// </summary>
    /// <remarks>
    /// Roslyn re-runs a syntax provider's transform with a fresh semantic model on every compilation change, and
    /// binding costs milliseconds per call against TorchSharp's overload sets, and per trainer. What a file's code binds
    /// to depends only on: the file itself, the declarations of every file (types, members, signatures, attributes,
    /// usings, initializers, doc comments), the metadata references and the options. Member bodies elsewhere cannot
    /// change it (C# infers no member types from bodies). So a result is reused when its syntax is the same object (a
    /// trainer: every declaring tree) and the declaration fingerprint, references and options are equal. One cache per
    /// generator instance; weak keys, so nothing is kept alive by it.
    /// </remarks>
    internal sealed class ModelCache
    {
        readonly ConditionalWeakTable<SyntaxTree, StrongBox<ulong>> _treeFingerprints = new();
        readonly ConditionalWeakTable<Compilation, StrongBox<ulong>> _compilationFingerprints = new();
        readonly ConditionalWeakTable<SyntaxTree, Entry> _callSites = new();
        readonly ConditionalWeakTable<SyntaxNode, Entry> _trainers = new();

        sealed class Entry(ulong fingerprint, ImmutableArray<MetadataReference> references, CompilationOptions options,
            SyntaxTree[] trees, object? value)
        {
            public ulong Fingerprint { get; } = fingerprint;
            public ImmutableArray<MetadataReference> References { get; } = references;
            public CompilationOptions Options { get; } = options;
            public SyntaxTree[] Trees { get; } = trees;
            public object? Value { get; } = value;
        }

        /// <summary>The call sites of <paramref name="tree"/>, from the cache or from <paramref name="parse"/>.</summary>
        public EquatableArray<InterceptorSpec> CallSites(SyntaxTree tree, Compilation compilation, System.Func<EquatableArray<InterceptorSpec>> parse)
        {
            if (_callSites.TryGetValue(tree, out var entry) && IsCurrent(entry, compilation, [tree]))
                return (EquatableArray<InterceptorSpec>)entry.Value!;
            var sites = parse();
            Store(_callSites, tree, compilation, [tree], sites);
            return sites;
        }

        /// <summary>The model of the trainer at <paramref name="context"/>'s node, from the cache or from <paramref name="parse"/>.</summary>
        public TrainerSpec? Trainer(GeneratorAttributeSyntaxContext context, System.Func<TrainerSpec?> parse)
        {
            var compilation = context.SemanticModel.Compilation;
            var trees = context.TargetSymbol.DeclaringSyntaxReferences.Select(r => r.SyntaxTree).ToArray();
            if (_trainers.TryGetValue(context.TargetNode, out var entry) && IsCurrent(entry, compilation, trees))
                return (TrainerSpec?)entry.Value;
            var spec = parse();
            Store(_trainers, context.TargetNode, compilation, trees, spec);
            return spec;
        }

        bool IsCurrent(Entry entry, Compilation compilation, SyntaxTree[] trees) =>
            entry.Trees.SequenceEqual(trees)
            && entry.Options.Equals(compilation.Options)
            && entry.References.SequenceEqual(compilation.References)
            && entry.Fingerprint == Fingerprint(compilation);

        void Store<TKey>(ConditionalWeakTable<TKey, Entry> table, TKey key, Compilation compilation, SyntaxTree[] trees, object? value)
            where TKey : class
        {
            var entry = new Entry(Fingerprint(compilation), compilation.References.ToImmutableArray(), compilation.Options, trees, value);
            table.Remove(key);
            table.Add(key, entry);
        }

        ulong Fingerprint(Compilation compilation) =>
            _compilationFingerprints.GetValue(compilation, c =>
            {
                var hash = Fnv.Start;
                foreach (var tree in c.SyntaxTrees)
                    hash = Fnv.Add(hash, _treeFingerprints.GetValue(tree, t => new StrongBox<ulong>(DeclarationFingerprint(t))).Value);
                return new StrongBox<ulong>(hash);
            }).Value;

        // The file's tokens outside member bodies and top-level statements, hashed. Trivia is left out: comments and
        // layout bind to nothing, disabled code is trivia, and the directives that disable it only act on their file.
        static ulong DeclarationFingerprint(SyntaxTree tree)
        {
            var hash = Fnv.Add(Fnv.Start, tree.FilePath);
            foreach (var token in tree.GetRoot().DescendantTokens(static n => !IsBody(n)))
                hash = Fnv.Add(hash, token.Text);
            return hash;
        }

        static bool IsBody(SyntaxNode node) => node switch
        {
            GlobalStatementSyntax => true,
            BlockSyntax or ArrowExpressionClauseSyntax => node.Parent is BaseMethodDeclarationSyntax or AccessorDeclarationSyntax
                or BasePropertyDeclarationSyntax,
            _ => false,
        };

        // FNV-1a, 64 bits: stable, allocation-free, good enough to tell declaration texts apart.
        static class Fnv
        {
            public const ulong Start = 14695981039346656037UL;
            const ulong Prime = 1099511628211UL;

            public static ulong Add(ulong hash, ulong value)
            {
                for (var i = 0; i < 8; i++) hash = (hash ^ ((value >> (8 * i)) & 0xFF)) * Prime;
                return hash;
            }

            public static ulong Add(ulong hash, string value)
            {
                foreach (var c in value) hash = (hash ^ c) * Prime;
                return Add(hash, (ulong)value.Length);
            }
        }
    }
}
