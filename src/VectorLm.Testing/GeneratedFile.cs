namespace VectorLm.Testing;

/// <summary>One file the generator added to the compilation.</summary>
/// <param name="HintName">The generator's name for it (<c>MyNamespace.MyTrainer.Trainer.g.cs</c>).</param>
/// <param name="Text">Its text, with the generator's version replaced by <see cref="GeneratedCode.VersionPlaceholder"/>.</param>
public sealed record GeneratedFile(string HintName, string Text);
