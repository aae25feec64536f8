using VectorLm.Tokenization;

namespace VectorLm.Sampling;

/// <summary>
/// What the engine needs of the trainer's tokenizer: encode/decode (the engine tokenizes with it, so trainer and
/// engine agree by construction) and the vocabulary it writes into the llama.cpp model's metadata.
/// </summary>
public interface ITokenCodec
{
    /// <summary>Token ids of <paramref name="text"/>, without BOS/EOS.</summary>
    int[] Encode(string text);

    /// <summary>Text of <paramref name="ids"/> (special tokens dropped).</summary>
    string Decode(IReadOnlyList<int> ids);

    /// <summary>Vocabulary pieces in id order (SentencePiece style: spaces as U+2581, bytes as &lt;0xXX&gt;).</summary>
    IReadOnlyList<string> Pieces { get; }

    /// <summary>Merge scores in id order.</summary>
    IReadOnlyList<float> Scores { get; }

    /// <summary>llama.cpp token types in id order (1 normal, 2 unknown, 3 control, 6 byte).</summary>
    IReadOnlyList<int> TokenTypes { get; }

    /// <summary>Beginning-of-sequence id.</summary>
    int BosId { get; }

    /// <summary>End-of-sequence id.</summary>
    int EosId { get; }

    /// <summary>Unknown-token id (-1 for none).</summary>
    int UnkId { get; }

    /// <summary>Whether prompts start with <see cref="BosId"/> (with <see cref="EngineOptions.AddBos"/> on).</summary>
    bool AddBos => BosId >= 0;

    /// <summary>
    /// The vocabulary written into the llama.cpp model's metadata; by default a SentencePiece-style ("llama") one from
    /// <see cref="Pieces"/>, <see cref="Scores"/> and <see cref="TokenTypes"/>.
    /// </summary>
    /// <exception cref="NotSupportedException">llama.cpp cannot express this tokenizer.</exception>
    GgufVocabulary Vocabulary => new("llama", null, Pieces, Scores, TokenTypes, null, BosId, EosId, UnkId, -1, AddBos, AddSpacePrefix: false);
}
