using System.Text.Json.Nodes;
using VectorLm.Models;
using VectorLm.Training;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

/// <summary>What a crash, a lost disk tail or a hostile folder does to checkpoints and weight folders.</summary>
public class CheckpointDurabilityTests
{
    static TinyRun NewRun() => new(TinyRun.Options with { KeepCheckpoints = 3 });

    // Two checkpoints (steps 1 and 2), then `damage` applied to the newest.
    static string TwoCheckpoints(TestSetup.TempDir dir, Action<string> damage)
    {
        using (var run = NewRun())
        {
            run.Trainer.Step();
            run.Trainer.SaveCheckpoint(dir.Path);
            run.Trainer.Step();
            damage(run.Trainer.SaveCheckpoint(dir.Path));
        }
        return Path.Combine(dir.Path, "step-00000001");
    }

    public static TheoryData<string> Damages() => ["truncated weights", "no optimizer state", "no trainer state", "torn trainer state", "folder gone"];

    static void Damage(string kind, string folder)
    {
        switch (kind)
        {
            case "truncated weights":
                using (var f = File.Open(Path.Combine(folder, "model.safetensors"), FileMode.Open)) f.SetLength(f.Length - 100);
                break;
            case "no optimizer state": File.Delete(Path.Combine(folder, "optimizer.bin")); break;
            case "no trainer state": File.Delete(Path.Combine(folder, "trainer_state.json")); break;
            case "torn trainer state":
                string state = Path.Combine(folder, "trainer_state.json");
                File.WriteAllText(state, File.ReadAllText(state)[..40]);
                break;
            case "folder gone": Directory.Delete(folder, recursive: true); break;
        }
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public void Resume_falls_back_to_the_previous_complete_checkpoint(string damage)
    {
        using var dir = new TestSetup.TempDir();
        string previous = TwoCheckpoints(dir, newest => Damage(damage, newest));
        Assert.Equal(previous, Trainer.LatestCheckpoint(dir.Path));
        using var run = NewRun();
        Assert.True(run.Trainer.Resume(dir.Path));
        Assert.Equal(1, run.Trainer.StepCount);
    }

    [Fact]
    public void A_crash_before_latest_moves_leaves_latest_on_a_complete_checkpoint()
    {
        using var dir = new TestSetup.TempDir();
        using var run = NewRun();
        var t = run.Trainer;
        t.Step();
        string first = t.SaveCheckpoint(dir.Path);
        t.Step();
        // Only this test's saves: other test classes save checkpoints in parallel.
        Trainer.AfterFolderRenamed = folder => { if (folder.StartsWith(dir.Path, StringComparison.Ordinal)) throw new IOException("power lost (simulated)"); };
        try { Assert.Throws<IOException>(() => t.SaveCheckpoint(dir.Path)); }
        finally { Trainer.AfterFolderRenamed = null; }
        Assert.Equal("step-00000001", File.ReadAllText(dir["latest"]));
        Assert.Equal(first, Trainer.LatestCheckpoint(dir.Path));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("step-00000001/../../outside")]
    [InlineData("/tmp")]
    [InlineData("step-00000001.old")]
    public void Latest_may_not_name_anything_outside_the_checkpoint_folders(string pointer)
    {
        using var dir = new TestSetup.TempDir();
        string root = dir["checkpoints"];
        TwoCheckpoints(dir, _ => { });
        // A complete checkpoint outside the root, where a hostile pointer leads.
        Directory.Move(dir["step-00000002"], dir["outside"]);
        Directory.CreateDirectory(root);
        Directory.Move(dir["step-00000001"], Path.Combine(root, "step-00000001"));
        File.WriteAllText(Path.Combine(root, "latest"), pointer);
        var ex = Assert.Throws<InvalidDataException>(() => Trainer.LatestCheckpoint(root));
        Assert.Contains(Path.Combine(root, "latest"), ex.Message);
        Assert.Contains(pointer, ex.Message);
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("sub/../../outside.safetensors")]
    [InlineData("/ABSOLUTE")]
    public void Shard_names_in_the_index_may_not_leave_the_folder(string shard)
    {
        using var dir = new TestSetup.TempDir();
        string outside = dir["outside.safetensors"];
        SafetensorsFile.Save(outside, [("w", ones(2))]);
        if (shard == "/ABSOLUTE") shard = outside;
        string folder = dir["model"];
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, SafetensorsFolder.IndexFileName),
            new JsonObject { ["weight_map"] = new JsonObject { ["w"] = shard } }.ToJsonString());
        var ex = Assert.Throws<InvalidDataException>(() => SafetensorsFolder.Open(folder).Dispose());
        Assert.Contains(shard, ex.Message);
    }

    [Fact]
    public void Sync_flushes_files_and_folders_and_names_a_path_it_cannot_open()
    {
        using var dir = new TestSetup.TempDir();
        File.WriteAllText(dir["a"], "x");
        DurableFiles.Sync(dir["a"]);
        DurableFiles.SyncTree(dir.Path);
        var ex = Assert.Throws<IOException>(() => DurableFiles.Sync(dir["missing"]));
        Assert.Contains(dir["missing"], ex.Message);
        Assert.Contains("errno", ex.Message);
    }
}

/// <summary>Tests that use torch's process-wide generator: alone, since any model construction elsewhere draws from it.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchGlobalRng
{
    public const string Name = "torch global RNG";
}

[Collection(TorchGlobalRng.Name)]
public class ResumeRngTests
{
    [Fact]
    public void Resume_restores_the_torch_RNG_of_the_save()
    {
        using var dir = new TestSetup.TempDir();
        float[] afterSave;
        using (var run = new TinyRun())
        {
            manual_seed(7);
            run.Trainer.Step();
            run.Trainer.SaveCheckpoint(dir.Path);
            using var draw = rand(16);
            afterSave = draw.data<float>().ToArray(); // what the saving run draws next
        }

        manual_seed(8); // another state: only the restore can bring the saved one back
        using var resumed = new TinyRun();
        Assert.True(resumed.Trainer.Resume(dir.Path));
        using var drawAfterResume = rand(16);
        Assert.Equal(afterSave, drawAfterResume.data<float>().ToArray());
    }
}
