namespace VectorLm.Tokenization;

/// <summary>
/// The type of a vocabulary entry, numbered as llama.cpp's <c>llama_token_type</c> (the values written to the GGUF
/// key <c>tokenizer.ggml.token_type</c>).
/// </summary>
public enum TokenType
{
    /// <summary>No type given.</summary>
    Undefined = 0,
    /// <summary>An ordinary piece of text (learned merges).</summary>
    Normal = 1,
    /// <summary>The unknown token <c>&lt;unk&gt;</c>.</summary>
    Unknown = 2,
    /// <summary>A control token such as <c>&lt;s&gt;</c> or <c>&lt;/s&gt;</c>; never produced from text.</summary>
    Control = 3,
    /// <summary>A user-defined piece matched before tokenizing.</summary>
    UserDefined = 4,
    /// <summary>An unused slot.</summary>
    Unused = 5,
    /// <summary>One raw byte, spelled <c>&lt;0xXX&gt;</c>.</summary>
    Byte = 6,
}
