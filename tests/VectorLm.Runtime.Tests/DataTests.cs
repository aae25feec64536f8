using VectorLm.Data;
using VectorLm.Tokenization;

namespace VectorLm.Runtime.Tests;

public class DataTests
{
    static readonly Tokenizer Tok = Tokenizer.ByteLevel();

    [Fact]
    public void Text_is_packed_into_fixed_length_shifted_sequences_without_losing_a_token()
    {
        string[] docs = ["hello world", "second doc", "x"];
        var ds = PackedDataset.FromDocuments(docs, Tok, 8);
        var stream = docs.SelectMany(d => Tok.Encode(d, addBos: true, addEos: true)).Select(i => (long)i).ToList();
        Assert.Equal((stream.Count - 1 + 7) / 8, ds.Count);
        var inputs = Enumerable.Range(0, ds.Count).SelectMany(i => ds.Inputs(i).ToArray()).ToList();
        var labels = Enumerable.Range(0, ds.Count).SelectMany(i => ds.Labels(i).ToArray()).ToList();
        Assert.Equal(stream.Take(stream.Count - 1), inputs.Take(stream.Count - 1));
        Assert.Equal(stream.Skip(1), labels.Take(stream.Count - 1));
        Assert.All(labels.Skip(stream.Count - 1), l => Assert.Equal(PackedDataset.IgnoreIndex, l)); // padding
        Assert.Equal(stream.Count - 1, ds.TargetTokens);
    }

    [Fact]
    public void Jsonl_takes_loss_on_the_completion_only()
    {
        using var dir = new TestSetup.TempDir();
        File.WriteAllLines(dir["d.jsonl"], ["{\"prompt\": \"12+7=\", \"completion\": \"19\"}", "", "{\"prompt\": \"1+1=\", \"completion\": \"2\"}"]);
        var ds = PackedDataset.FromJsonlFile(dir["d.jsonl"], Tok, 64);
        Assert.Equal(1, ds.Count);
        var labels = ds.Labels(0).ToArray();
        var targets = labels.Where(l => l != PackedDataset.IgnoreIndex).ToArray();
        long[] expected = [.. Tok.Encode("19").Select(i => (long)i), Tok.EosId, .. Tok.Encode("2").Select(i => (long)i), Tok.EosId];
        Assert.Equal(expected, targets);
        // The label of "1" in "19" sits at the position of "=".
        var inputs = ds.Inputs(0).ToArray();
        int eq = Array.IndexOf(inputs, (long)Tok.Encode("=")[0]);
        Assert.Equal(Tok.Encode("1")[0], labels[eq]);
        Assert.Equal(PackedDataset.IgnoreIndex, labels[eq - 1]);
    }

    [Fact]
    public void Bad_jsonl_lines_name_the_file_and_line()
    {
        using var dir = new TestSetup.TempDir();
        File.WriteAllLines(dir["d.jsonl"], ["{\"prompt\": \"a\", \"completion\": \"b\"}", "{\"prompt\": \"a\"}"]);
        var ex = Assert.Throws<InvalidDataException>(() => PackedDataset.ReadJsonl(dir["d.jsonl"]));
        Assert.Contains("d.jsonl:2", ex.Message);
    }

    [Fact]
    public void Empty_dataset_is_a_clear_error()
    {
        using var dir = new TestSetup.TempDir();
        File.WriteAllText(dir["empty.txt"], "\n\n   \n");
        var ex = Assert.Throws<InvalidDataException>(() => PackedDataset.FromTextFile(dir["empty.txt"], Tok, 16));
        Assert.Contains("empty", ex.Message);
        Assert.Contains("empty.txt", ex.Message);
        File.WriteAllText(dir["empty.jsonl"], "");
        Assert.Contains("empty", Assert.Throws<InvalidDataException>(() => PackedDataset.FromJsonlFile(dir["empty.jsonl"], Tok, 16)).Message);
        Assert.Throws<InvalidDataException>(() => PackedDataset.FromExamples([], Tok, 16));
    }

    [Theory]
    [InlineData(40, 4, 3)]
    [InlineData(41, 4, 3)]
    [InlineData(43, 3, 5)]
    [InlineData(7, 7, 2)]
    public void Rank_shards_are_disjoint_cover_the_dataset_and_have_equal_batch_counts(int sequences, int world, int batch)
    {
        var ds = PackedDataset.FromDocuments(Enumerable.Range(0, sequences).Select(i => new string((char)('a' + i % 26), 2)), Tok, 4);
        Assert.Equal(sequences, ds.Count); // each "<s>xx</s>" is 4 tokens: n documents give 4n - 1 targets = n windows of 4
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var loaders = Enumerable.Range(0, world).Select(r => new ShardedDataLoader(ds, batch, seed: 9, rank: r, worldSize: world)).ToList();
            var shards = loaders.Select(l => l.RankIndices(epoch)).ToList();
            var all = shards.SelectMany(s => s).ToList();
            Assert.Equal(all.Count, all.Distinct().Count());                         // disjoint
            Assert.Equal(sequences - sequences % world, all.Count);                  // covers all but the < world dropped
            Assert.Single(loaders.Select(l => l.BatchesPerEpoch).Distinct());        // same number of batches
            // Batches handed out in an epoch are exactly the rank's shard.
            foreach (var l in loaders)
            {
                l.Seek(new DataPosition(epoch, 0));
                var seen = Enumerable.Range(0, l.BatchesPerEpoch).SelectMany(_ => { using var b = l.Next(); return b.Indices; }).ToList();
                Assert.Equal(l.RankIndices(epoch), seen);
            }
        }
        var e0 = new ShardedDataLoader(ds, batch, seed: 9).RankIndices(0);
        Assert.NotEqual(e0, new ShardedDataLoader(ds, batch, seed: 9).RankIndices(1));     // reshuffled per epoch
        Assert.Equal(e0, new ShardedDataLoader(ds, batch, seed: 9).RankIndices(0));        // deterministic
        Assert.NotEqual(e0, new ShardedDataLoader(ds, batch, seed: 10).RankIndices(0));    // by seed
    }

    [Fact]
    public void Loader_moves_to_the_next_epoch_and_can_seek()
    {
        var ds = PackedDataset.FromDocuments(Enumerable.Range(0, 10).Select(i => "ab"), Tok, 4);
        var l = new ShardedDataLoader(ds, 4, seed: 1);
        Assert.Equal(3, l.BatchesPerEpoch);
        using (var b = l.Next()) Assert.Equal(new long[] { 4, 4 }, b.InputIds.shape);
        l.Next().Dispose();
        using (var b = l.Next()) Assert.Equal(2, b.InputIds.shape[0]); // last, smaller batch
        Assert.Equal(new DataPosition(0, 3), l.Position);
        using (var b = l.Next()) Assert.Equal(l.RankIndices(1)[..4], b.Indices);
        Assert.Equal(new DataPosition(1, 1), l.Position);
        var other = new ShardedDataLoader(ds, 4, seed: 1);
        other.Seek(l.Position);
        using var x = l.Next();
        using var y = other.Next();
        Assert.Equal(x.Indices, y.Indices);
    }

    [Fact]
    public void Too_few_sequences_for_the_ranks_is_a_clear_error()
    {
        var ds = PackedDataset.FromDocuments(["ab"], Tok, 8);
        var ex = Assert.Throws<InvalidDataException>(() => new ShardedDataLoader(ds, 1, rank: 0, worldSize: 2));
        Assert.Contains("2 ranks", ex.Message);
    }

    [Fact]
    public void Arithmetic_task_is_deterministic_and_correct()
    {
        var a = ArithmeticTask.Generate(50, seed: 3);
        Assert.Equal(a, ArithmeticTask.Generate(50, seed: 3));
        Assert.NotEqual(a, ArithmeticTask.Generate(50, seed: 4));
        Assert.All(a, e => Assert.Matches(@"^\d+\+\d+=$", e.Prompt));
        Assert.All(a, e => Assert.True(ArithmeticTask.IsCorrect(e.Prompt, e.Completion)));
        Assert.False(ArithmeticTask.IsCorrect("12+7=", "18"));
        Assert.True(ArithmeticTask.IsCorrect("12+7=", "19</s>"));
    }
}
