using System.Diagnostics;
using System.IO.Compression;
using System.Reflection;
using Xunit.Abstractions;

namespace VectorLm.Generators.Tests;

/// <summary>
/// Packs the solution as `dotnet pack` at the root does, from the already-built projects, then builds and runs a fresh
/// console project that consumes the package from a local folder feed, as a user would: the generator, analyzers,
/// code fix and interceptor opt-in must all arrive through the package. The one slow test of this project (one
/// restore, one build, one `dotnet format`).
/// </summary>
public sealed class PackagingTests(ITestOutputHelper output) : IDisposable
{
    readonly string _dir = Directory.CreateTempSubdirectory("vectorlm-pack-").FullName;
    // A version no other run used, so the global packages folder never serves a stale copy.
    readonly string _version = "0.1.0-test" + DateTime.UtcNow.ToString("yyyyMMddHHmmssfff", System.Globalization.CultureInfo.InvariantCulture);

    public void Dispose()
    {
        Directory.Delete(_dir, recursive: true);
        var cached = Path.Combine(NuGetPackagesFolder(), "vectorlm", _version);
        if (Directory.Exists(cached)) Directory.Delete(cached, recursive: true);
    }

    // A FineTune-shaped user trainer: tiny Llama, colocated sampler, optimizer steps, one Generate at the end.
    const string TrainerSource = """
        using TorchSharp;
        using VectorLm;
        using VectorLm.Models;
        using VectorLm.Sampling;
        using VectorLm.Tokenization;
        using VectorLm.Training;

        namespace Consumer;

        /// <summary>A user's trainer, built from the package.</summary>
        [DistributedTrainer]
        public partial class PackagedTrainer
        {
            /// <summary>Number of optimizer steps.</summary>
            [Option] public int Steps { get; init; } = 3;

            public void Train(TrainerContext ctx)
            {
                var tokenizer = Tokenizer.ByteLevel();
                using var model = LlamaModel.Create(LlamaConfig.Tiny, ctx.Device, seed: 0);
                // llama.cpp explicitly: its native libraries must load from the package (Auto would pick torch at 32 slots).
                using var sampler = ctx.CreateSampler(model, tokenizer, new EngineOptions { Backend = SamplingBackend.LlamaCpp });
                var optimizer = Optimizers.AdamW(model, 1e-2);
                var steps = 0;
                using var subscription = ctx.OnWeightsChanged(() => steps++);
                for (var i = 0; i < Steps; i++)
                {
                    optimizer.zero_grad();
                    // Each rank trains on its own batch; the intercepted step averages the gradients.
                    using var ids = torch.randint(0, 256, [2, 8], generator: new torch.Generator((ulong)(ctx.Rank * 100 + i))).to(ctx.Device);
                    using var loss = model.Loss(ids, ids);
                    loss.backward();
                    optimizer.step();
                }
                var sample = sampler.Generate(["12+34="], SamplingParams.Greedy(6))[0].Samples[0];
                System.Console.WriteLine($"rank {ctx.Rank}/{ctx.WorldSize}: {steps} collective steps; sample '{sample.Text}' v{sample.WeightVersion}");
            }
        }
        """;

    [Fact]
    public void Package_ships_the_generator_and_a_fresh_console_project_runs_a_trainer_on_two_ranks()
    {
        var testDir = AppContext.BaseDirectory; // .../tests/VectorLm.Generators.Tests/bin/{Configuration}/net10.0/
        var configuration = new DirectoryInfo(testDir).Parent!.Name;
        var repo = Path.GetFullPath(Path.Combine(GeneratorHarness.ProjectDir(), "..", ".."));
        var feed = Directory.CreateDirectory(Path.Combine(_dir, "feed")).FullName;

        // The projects are built (this test project references them); pack the whole solution without building again:
        // exactly the two packages (and their symbols) must come out, VectorLm and VectorLm.Testing (the snapshot-test
        // helper for users' test projects), whatever other projects the solution holds.
        Dotnet(repo, "pack", "VectorLm.sln", "-c", configuration, "--no-build", "-o", feed, $"-p:PackageVersion={_version}");
        Assert.Equal(new[] { $"VectorLm.{_version}.nupkg", $"VectorLm.{_version}.snupkg", $"VectorLm.Testing.{_version}.nupkg", $"VectorLm.Testing.{_version}.snupkg" },
            Directory.GetFiles(feed).Select(f => Path.GetFileName(f)).Order(StringComparer.Ordinal));
        var package = Path.Combine(feed, $"VectorLm.{_version}.nupkg");
        using (var zip = ZipFile.OpenRead(package))
        {
            var entries = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
            Assert.Contains("analyzers/dotnet/cs/VectorLm.Generators.dll", entries);
            Assert.Contains("analyzers/dotnet/cs/VectorLm.Analyzers.dll", entries);
            Assert.Contains("analyzers/dotnet/cs/VectorLm.Analyzers.CodeFixes.dll", entries);
            Assert.Contains("buildTransitive/VectorLm.props", entries);
            Assert.Contains("lib/net10.0/VectorLm.Runtime.dll", entries);
            Assert.Contains("README.md", entries);
            // The sample task moved out of the library; the analyzer projects ship as files, never as dependencies.
            using var nuspecReader = new StreamReader(zip.GetEntry("VectorLm.nuspec")!.Open());
            var nuspec = nuspecReader.ReadToEnd();
            Assert.Contains("<license type=\"expression\">MIT</license>", nuspec);
            Assert.Contains("<readme>README.md</readme>", nuspec);
            Assert.Contains("<repository type=\"git\"", nuspec);
            Assert.DoesNotContain("VectorLm.Generators", nuspec);
            Assert.DoesNotContain("VectorLm.Analyzers", nuspec);
        }

        var app = Directory.CreateDirectory(Path.Combine(_dir, "app")).FullName;
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "App.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="VectorLm" Version="{_version}" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "PackagedTrainer.cs"), TrainerSource);

        Dotnet(app, "build", "-c", "Release", "-nodeReuse:false", "-p:UseSharedCompilation=false");
        var dll = Path.Combine(app, "bin", "Release", "net10.0", "App.dll");
        var help = Dotnet(app, dll, "--help");
        Assert.Contains("--steps", help);
        Assert.Contains("Number of optimizer steps.", help);
        Assert.Contains("--nproc-per-node", help);

        var single = Dotnet(app, dll, "--world-size", "1", "--steps", "4");
        Assert.Contains("rank 0/1: 4 collective steps; sample '", single);
        Assert.Contains("' v1", single); // the engine synced once, after the four steps

        // Two ranks (processes) on CPU: both step together and see the same completion.
        var two = Dotnet(app, dll, "--nproc-per-node", "2", "--steps", "2");
        var lines = two.Split('\n').Where(l => l.Contains("collective steps", StringComparison.Ordinal)).ToArray();
        var rank0 = Assert.Single(lines, l => l.Contains("rank 0/2: 2 collective steps", StringComparison.Ordinal));
        var rank1 = Assert.Single(lines, l => l.Contains("rank 1/2: 2 collective steps", StringComparison.Ordinal));
        static string Sample(string line) => line[line.IndexOf("; sample", StringComparison.Ordinal)..].TrimEnd('\r');
        Assert.Equal(Sample(rank0), Sample(rank1));

        // The VLM1001 code fix reaches the consumer: `dotnet format` loads the project's analyzers and code fixes from
        // the package, finds the rank-conditional barrier and hoists it. Only the packaged fix can make this edit.
        var violation = Path.Combine(app, "RankZeroBarrier.cs");
        File.WriteAllText(violation, RankZeroBarrierSource);
        Dotnet(app, "format", "analyzers", "App.csproj", "--diagnostics", "VLM1001", "--severity", "warn", "--no-restore",
            "--include", "RankZeroBarrier.cs");
        var fixedSource = File.ReadAllText(violation);
        Assert.NotEqual(RankZeroBarrierSource, fixedSource);
        Assert.DoesNotContain("if (ctx.IsMainRank)", fixedSource);
        var barrier = fixedSource.IndexOf("ctx.Barrier();", StringComparison.Ordinal);
        Assert.InRange(barrier, 0, fixedSource.IndexOf("Console.WriteLine", StringComparison.Ordinal));
    }

    // A collective only rank 0 reaches: VLM1001, and the fix moves the barrier before the `if`, which is then empty.
    const string RankZeroBarrierSource = """
        using VectorLm;

        namespace Consumer;

        /// <summary>A user's helper with a deadlock: only the main rank waits at the barrier.</summary>
        public static class RankZeroBarrier
        {
            /// <summary>Waits for the other ranks, on rank 0 only.</summary>
            public static void Sync(TrainerContext ctx)
            {
                if (ctx.IsMainRank)
                {
                    ctx.Barrier();
                }
                System.Console.WriteLine("synced");
            }
        }
        """;

    string Dotnet(string workingDirectory, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        // The test host's MSBuild and VSTest variables would steer the child build into this repository's settings.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)
                     || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase) || k == "DOTNET_HOST_PATH").ToList())
            start.Environment.Remove(key);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        if (!process.WaitForExit(TimeSpan.FromMinutes(4)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"dotnet {string.Join(' ', args)} did not finish in 4 minutes");
        }
        var text = stdout + stderr.Result;
        output.WriteLine($"$ dotnet {string.Join(' ', args)}\n{text}");
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', args)} exited with {process.ExitCode}:\n{text}");
        return text;
    }

    static string NuGetPackagesFolder() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } folder
            ? folder
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
}
