using VectorLm.Hosting;

namespace VectorLm.Training;

/// <summary>
/// Writes that survive a crash or power loss: data reaches the disk (fsync) before the rename that publishes it, and
/// the folder holding a renamed entry is synced too, since a rename lives in the folder's own data.
/// </summary>
internal static class DurableFiles
{
    /// <summary>Flushes <paramref name="path"/> (a file or a folder) to the disk.</summary>
    /// <exception cref="IOException">The flush failed; the message names the path and the error.</exception>
    public static void Sync(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            // NTFS journals renames; only file contents need flushing there.
            if (File.Exists(path))
                using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite)) f.Flush(flushToDisk: true);
            return;
        }
        int fd = Posix.open(path, Posix.O_RDONLY);
        if (fd < 0) throw Failure("open", path);
        try
        {
            if (Posix.fsync(fd) != 0) throw Failure("fsync", path);
        }
        finally { Posix.close(fd); }
    }

    /// <summary>Flushes every file under <paramref name="folder"/>, its subfolders, then the folder itself.</summary>
    public static void SyncTree(string folder)
    {
        foreach (var file in Directory.EnumerateFiles(folder)) Sync(file);
        foreach (var sub in Directory.EnumerateDirectories(folder)) SyncTree(sub);
        Sync(folder);
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="text"/> atomically and durably: a reader sees the old
    /// or the new content, never a mix, and after a crash the new content is there once this returned.
    /// </summary>
    public static void WriteAllText(string path, string text)
    {
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, text);
        Sync(tmp);
        File.Move(tmp, path, overwrite: true);
        Sync(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    static IOException Failure(string call, string path)
    {
        int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
        return new IOException($"{call} '{path}' failed: {System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
    }
}
