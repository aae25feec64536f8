using System.Runtime.CompilerServices;

namespace VectorLm.Reinforcement.Tests;

static class TestSetup
{
    // One intra-op thread: test classes run in parallel on the 2 CI cores.
    [ModuleInitializer]
    internal static void Init() => TorchSharp.torch.set_num_threads(1);

    /// <summary>A fresh temporary folder deleted on dispose.</summary>
    internal sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("vlm-rl-test").FullName;
        public string this[string name] => System.IO.Path.Combine(Path, name);
        public void Dispose()
        {
            try { Directory.Delete(Path, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
