using System.Text;
using VectorLm.Tokenization;

namespace VectorLm.Runtime.Tests;

public class TokenizerTests
{
    static readonly string[] Alphabet =
        ["a", "b", "z", "0", "9", " ", "  ", "\n", "\t", "+", "=", "é", "ß", "ж", "中", "文", "😀", "🧪", "👍🏽", "<s>", "<0x41>", "\u0301"];

    static string RandomText(Random rng, int parts)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < parts; i++) sb.Append(Alphabet[rng.Next(Alphabet.Length)]);
        return sb.ToString();
    }

    [Fact]
    public void ByteLevel_has_the_fixed_layout()
    {
        var tok = Tokenizer.ByteLevel();
        Assert.Equal(259, tok.VocabSize);
        Assert.Equal(("<unk>", TokenType.Unknown), (tok.Pieces[tok.UnkId], tok.Types[tok.UnkId]));
        Assert.Equal(("<s>", TokenType.Control), (tok.Pieces[tok.BosId], tok.Types[tok.BosId]));
        Assert.Equal(("</s>", TokenType.Control), (tok.Pieces[tok.EosId], tok.Types[tok.EosId]));
        Assert.Equal("<0x00>", tok.Pieces[3]);
        Assert.Equal("<0x41>", tok.Pieces[3 + 0x41]);
        Assert.Equal("<0xFF>", tok.Pieces[258]);
        Assert.All(Enumerable.Range(3, 256), i => Assert.Equal(TokenType.Byte, tok.Types[i]));
        Assert.All(tok.Scores, s => Assert.Equal(0f, s));
    }

    [Fact]
    public void ByteLevel_encodes_the_utf8_of_the_escaped_text()
    {
        var tok = Tokenizer.ByteLevel();
        string text = "Hi there 😀 ж";
        int[] expected = Encoding.UTF8.GetBytes(text.Replace(' ', '\u2581')).Select(b => b + 3).ToArray();
        Assert.Equal(expected, tok.Encode(text));
        Assert.Equal([tok.BosId, .. expected, tok.EosId], tok.Encode(text, addBos: true, addEos: true));
        Assert.Empty(tok.Encode(""));
    }

    [Fact]
    public void Random_strings_round_trip_through_byte_level_and_trained_vocabularies()
    {
        var rng = new Random(1234);
        var corpus = Enumerable.Range(0, 200).Select(_ => RandomText(rng, 30)).ToList();
        var trained = Tokenizer.Train(corpus, 400);
        Assert.True(trained.VocabSize > 259, "training learned no merges");
        foreach (var tok in new[] { Tokenizer.ByteLevel(), trained })
            for (int i = 0; i < 300; i++)
            {
                string text = RandomText(rng, rng.Next(0, 40));
                int[] ids = tok.Encode(text);
                Assert.All(ids, id => Assert.InRange(id, 3, tok.VocabSize - 1)); // never unk/bos/eos from text
                Assert.Equal(text, tok.Decode(ids));
            }
    }

    [Fact]
    public void Trained_merges_shorten_the_encoding_and_are_normal_pieces_with_falling_scores()
    {
        var corpus = Enumerable.Repeat("the cat sat on the mat with the hat", 20).ToList();
        var tok = Tokenizer.Train(corpus, 270);
        Assert.Equal(270, tok.VocabSize);
        Assert.True(tok.Encode(corpus[0]).Length < Tokenizer.ByteLevel().Encode(corpus[0]).Length);
        for (int i = 259; i < tok.VocabSize; i++)
        {
            Assert.Equal(TokenType.Normal, tok.Types[i]);
            Assert.Equal(-(i - 258), tok.Scores[i]);
        }
        Assert.NotNull(tok.PieceToId("\u2581the"));
        Assert.Equal(tok.PieceToId("\u2581the"), tok.Encode(" the").Single());
    }

    static Tokenizer WithPieces(params (string Piece, float Score)[] extra)
    {
        var b = Tokenizer.ByteLevel();
        return Tokenizer.FromVocabulary(
            [.. b.Pieces, .. extra.Select(e => e.Piece)],
            [.. b.Scores, .. extra.Select(e => e.Score)],
            [.. b.Types, .. extra.Select(_ => TokenType.Normal)]);
    }

    [Fact]
    public void Training_on_special_token_texts_never_learns_a_piece_that_completes_one()
    {
        var tok = Tokenizer.Train(Enumerable.Repeat("<0x41> <s> </s> <unk> <0x41><0x41>", 30), 400);
        string text = "<0x41> <s> </s> <unk>";
        int[] ids = tok.Encode(text);
        Assert.DoesNotContain(3 + 'A', ids);
        Assert.DoesNotContain(tok.BosId, ids);
        Assert.DoesNotContain(tok.EosId, ids);
        Assert.DoesNotContain(tok.UnkId, ids);
        Assert.Equal(text, tok.Decode(ids));
    }

    [Fact]
    public void Merge_order_is_highest_score_then_leftmost()
    {
        // "abc": "ab" and "bc" both pieces; the higher score wins.
        var tok = WithPieces(("ab", -2), ("bc", -1));
        int ab = tok.PieceToId("ab")!.Value, bc = tok.PieceToId("bc")!.Value;
        Assert.Equal(new[] { 3 + 'a', bc }, tok.Encode("abc"));
        tok = WithPieces(("ab", -1), ("bc", -2));
        ab = tok.PieceToId("ab")!.Value;
        Assert.Equal(new[] { ab, 3 + 'c' }, tok.Encode("abc"));
        // Equal scores: the leftmost pair merges first.
        tok = WithPieces(("aa", -1));
        int aa = tok.PieceToId("aa")!.Value;
        Assert.Equal(new[] { aa, 3 + 'a' }, tok.Encode("aaa"));
        Assert.Equal(new[] { aa, aa }, tok.Encode("aaaa"));
    }

    [Fact]
    public void Merges_chain_through_intermediate_pieces_and_may_span_spaces_like_llama_cpp()
    {
        var tok = WithPieces(("\u2581a", -1), ("\u2581ab", -2), ("b\u2581", -3));
        int a = tok.PieceToId("\u2581a")!.Value, ab = tok.PieceToId("\u2581ab")!.Value;
        Assert.Equal(new[] { ab }, tok.Encode(" ab"));
        Assert.Equal(new[] { ab, a }, tok.Encode(" ab a"));
        Assert.Equal(" ab a", tok.Decode(tok.Encode(" ab a")));
    }

    [Fact]
    public void Decode_maps_control_and_unknown_to_nothing_and_bad_utf8_to_replacement()
    {
        var tok = Tokenizer.ByteLevel();
        Assert.Equal("", tok.Decode([tok.BosId, tok.EosId, tok.UnkId]));
        Assert.Equal("a\uFFFDb", tok.Decode([3 + 'a', 3 + 0xF0, 3 + 'b']));
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([259]));
        Assert.Contains("259", ex.Message);
    }

    [Fact]
    public void A_literal_space_marker_decodes_as_a_space()
    {
        var tok = WithPieces(("x\u2581", -1));
        Assert.Equal("x ", tok.Decode(tok.Encode("x\u2581")));
        Assert.Equal(" ", Tokenizer.ByteLevel().Decode(Tokenizer.ByteLevel().Encode("\u2581")));
    }

    [Fact]
    public void Lone_surrogates_encode_as_the_replacement_character()
    {
        var tok = Tokenizer.ByteLevel();
        Assert.Equal(tok.Encode("\uFFFD"), tok.Encode("\uD800"));
    }

    [Fact]
    public void Save_and_Load_round_trip()
    {
        var tok = Tokenizer.Train(["hello world hello there", "world of hello"], 280);
        string dir = Directory.CreateTempSubdirectory("vlm-tok").FullName;
        try
        {
            string path = Path.Combine(dir, "tokenizer.json");
            tok.Save(path);
            var back = Tokenizer.Load(path);
            Assert.Equal(tok.Pieces, back.Pieces);
            Assert.Equal(tok.Scores, back.Scores);
            Assert.Equal(tok.Types, back.Types);
            Assert.Equal(tok.Encode("hello world"), back.Encode("hello world"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Bad_vocabularies_are_rejected_with_the_entry_named()
    {
        var b = Tokenizer.ByteLevel();
        var pieces = b.Pieces.ToArray();
        pieces[3 + 7] = "<0x99>";
        var ex = Assert.Throws<InvalidDataException>(() => Tokenizer.FromVocabulary(pieces, b.Scores, b.Types));
        Assert.Contains("entry 10", ex.Message);
        ex = Assert.Throws<InvalidDataException>(() => Tokenizer.FromVocabulary(
            [.. b.Pieces, "ab", "ab"], [.. b.Scores, -1, -2], [.. b.Types, TokenType.Normal, TokenType.Normal]));
        Assert.Contains("'ab' appears twice", ex.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Tokenizer.Train(["x"], 100));
    }
}
