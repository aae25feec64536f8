using VectorLm.Build;
using static TorchSharp.torch;

namespace VectorLm.Runtime.Tests;

public class TorchSharpLoadsTests
{
    [Fact]
    public void TorchSharp_loads_and_computes_a_matmul()
    {
        using var a = tensor(new float[] { 1, 2, 3, 4 }, new long[] { 2, 2 });
        using var b = a.matmul(a);
        Assert.Equal(new float[] { 7, 10, 15, 22 }, b.data<float>().ToArray());
    }

    [Fact]
    public void Output_copy_of_LibTorchSharp_has_no_strong_need_the_host_lacks()
    {
        string lib = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(lib), $"missing {lib}");
        var needs = ElfVersionNeeds.Read(File.ReadAllBytes(lib));
        var glibcxx32 = needs.Where(n => n.Version == "GLIBCXX_3.4.32").ToList();
        Assert.NotEmpty(glibcxx32); // the marker need is there, so the check below is meaningful
        bool hostHas = ElfVersionNeeds.HostLibstdcxxHas("GLIBCXX_3.4.32", ElfVersionNeeds.DefaultLibstdcxxPaths);
        Assert.All(glibcxx32, n => Assert.True(hostHas || n.IsWeak));
    }

    [Fact]
    public void MarkWeak_changes_only_the_named_version_and_is_idempotent()
    {
        string pkg = Path.Combine(Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"),
            "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(pkg), $"missing {pkg}");
        byte[] elf = File.ReadAllBytes(pkg);
        var before = ElfVersionNeeds.Read(elf);
        Assert.Equal(1, ElfVersionNeeds.MarkWeak(elf, "GLIBCXX_3.4.32"));
        Assert.Equal(0, ElfVersionNeeds.MarkWeak(elf, "GLIBCXX_3.4.32"));
        var after = ElfVersionNeeds.Read(elf);
        Assert.Equal(before.Count, after.Count);
        for (int i = 0; i < before.Count; i++)
        {
            Assert.Equal(before[i].Version, after[i].Version);
            Assert.Equal(before[i].Version == "GLIBCXX_3.4.32", before[i].IsWeak != after[i].IsWeak);
        }
    }

    [Fact]
    public void Read_rejects_a_file_that_is_not_ELF()
    {
        Assert.Throws<InvalidDataException>(() => ElfVersionNeeds.Read(new byte[128]));
    }
}
