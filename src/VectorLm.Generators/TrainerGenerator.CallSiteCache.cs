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
    /// Reuses a file's intercepted call sites across compilations that differ only inside member bodies of other files.
    /// </summary>
    /// <remarks>
    /// Roslyn re-runs a syntax provider's transform with a fresh semantic model on every compilation change, and
    /// finding the collective call sites binds the invocations (milliseconds each against TorchSharp's overload sets).
    /// What a file's calls bind to depends only on: the file itself, the declarations of every file (types, members,
    /// signatures, attributes, usings, initializers, doc comments), the metadata references and the options. Member
    /// bodies elsewhere cannot change it (C# infers no member types from bodies). So a file's result is reused when the
    /// tree is the same object and the declaration fingerprint, references and options are equal. One cache per
    /// generator instance; weak keys, so nothing is kept alive by it.
    /// </remarks>
    internal sealed class CallSiteCache
    {
        readonly ConditionalWeakTable<SyntaxTree, StrongBox<ulong>> _treeFingerprints = new();
        readonly ConditionalWeakTable<Compilation, StrongBox<ulong>> _compilationFingerprints = new();
        readonly ConditionalWeakTable<SyntaxTree, Entry> _entries = new();

        sealed class Entry(ulong fingerprint, ImmutableArray<MetadataReference> references, CompilationOptions options,
            EquatableArray<InterceptorSpec> sites)
        {
            public ulong Fingerprint { get; } = fingerprint;
            public ImmutableArray<MetadataReference> References { get; } = references;
            public CompilationOptions Options { get; } = options;
            public EquatableArray<InterceptorSpec> Sites { get; } = sites;
        }

        public bool TryGet(SyntaxTree tree, Compilation compilation, out EquatableArray<InterceptorSpec> sites)
        {
            sites = default;
            if (!_entries.TryGetValue(tree, out var entry)) return false;
            if (!entry.Options.Equals(compilation.Options)
                || !entry.References.SequenceEqual(compilation.References)
                || entry.Fingerprint != Fingerprint(compilation))
                return false;
            sites = entry.Sites;
            return true;
        }

        public void Store(SyntaxTree tree, Compilation compilation, EquatableArray<InterceptorSpec> sites)
        {
            var entry = new Entry(Fingerprint(compilation), compilation.References.ToImmutableArray(), compilation.Options, sites);
            _entries.Remove(tree);
            _entries.Add(tree, entry);
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
