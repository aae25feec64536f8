namespace VectorLm.Data;

/// <summary>One supervised example: the model sees <see cref="Prompt"/> and is trained on <see cref="Completion"/> only.</summary>
public sealed record PromptCompletion(string Prompt, string Completion);
