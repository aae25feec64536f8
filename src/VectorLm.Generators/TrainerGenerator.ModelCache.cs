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
    /// Reuses a trainer's model across compilations that differ only inside member bodies of other files.
    /// </summary>
    /// <remarks>
    /// Roslyn re-runs the ForAttributeWithMetadataName transform with a fresh semantic model on every compilation
    /// change, and finding the collective call sites binds the trainer's method bodies (milliseconds per trainer
    /// against TorchSharp's overload sets). What those bodies bind to depends only on: the trainer's own files, the
    /// declarations of every file (types, members, signatures, attributes, usings, initializers, doc comments), the
    /// metadata references and the options. Member bodies elsewhere cannot change it (C# infers no member types from
    /// bodies). So a model is reused when its trainer's declaring trees are the same objects and the declaration
    /// fingerprint, references and options are equal. One cache per generator instance; weak keys, so nothing is
    /// kept alive by it.
    /// </remarks>
    internal sealed class ModelCache
    {
        readonly ConditionalWeakTable<SyntaxTree, StrongBox<ulong>> _treeFingerprints = new();
        readonly ConditionalWeakTable<Compilation, StrongBox<ulong>> _compilationFingerprints = new();
        readonly ConditionalWeakTable<SyntaxTree, Entry> _entries = new();

        sealed class Entry(ulong fingerprint, ImmutableArray<MetadataReference> references, CompilationOptions options,
            SyntaxTree[] trees, string typeName, TrainerSpec? spec)
        {
            public ulong Fingerprint { get; } = fingerprint;
            public ImmutableArray<MetadataReference> References { get; } = references;
            public CompilationOptions Options { get; } = options;
            public SyntaxTree[] Trees { get; } = trees;
            public string TypeName { get; } = typeName;
            public TrainerSpec? Spec { get; } = spec;
        }

        public bool TryGet(GeneratorAttributeSyntaxContext context, out TrainerSpec? spec)
        {
            spec = null;
            if (!_entries.TryGetValue(context.TargetNode.SyntaxTree, out var entry)) return false;
            var compilation = context.SemanticModel.Compilation;
            if (entry.TypeName != context.TargetSymbol.ToDisplayString()
                || !entry.Trees.SequenceEqual(DeclaringTrees(context.TargetSymbol))
                || !entry.Options.Equals(compilation.Options)
                || !entry.References.SequenceEqual(compilation.References)
                || entry.Fingerprint != Fingerprint(compilation))
                return false;
            spec = entry.Spec;
            return true;
        }

        public void Store(GeneratorAttributeSyntaxContext context, TrainerSpec? spec)
        {
            var compilation = context.SemanticModel.Compilation;
            var entry = new Entry(Fingerprint(compilation), compilation.References.ToImmutableArray(), compilation.Options,
                DeclaringTrees(context.TargetSymbol), context.TargetSymbol.ToDisplayString(), spec);
            _entries.Remove(context.TargetNode.SyntaxTree);
            _entries.Add(context.TargetNode.SyntaxTree, entry);
        }

        static SyntaxTree[] DeclaringTrees(ISymbol symbol) =>
            symbol.DeclaringSyntaxReferences.Select(r => r.SyntaxTree).ToArray();

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
