namespace VectorLm.Testing;

/// <summary>Finds the folder of the running test project, so that baselines are read from and written to the sources, not bin/.</summary>
public static class TestProject
{
    /// <summary>
    /// The nearest folder above the test binary (<c>bin/Release/net10.0/</c>) that holds a <c>.csproj</c>: the test
    /// project's folder. Found from the binary rather than <c>[CallerFilePath]</c>, which CI builds map to <c>/_/</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">No folder above the binary holds a project file.</exception>
    public static string Directory => s_directory.Value;

    static readonly Lazy<string> s_directory = new(Find);

    /// <summary><paramref name="path"/> if absolute, else <paramref name="path"/> under <see cref="Directory"/>.</summary>
    public static string Resolve(string path) => Path.IsPathRooted(path) ? path : Path.GetFullPath(Path.Combine(Directory, path));

    static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (dir.EnumerateFiles("*.csproj").Any()) return dir.FullName;
        throw new InvalidOperationException($"No folder above {AppContext.BaseDirectory} holds a .csproj; pass absolute baseline and project paths.");
    }
}
