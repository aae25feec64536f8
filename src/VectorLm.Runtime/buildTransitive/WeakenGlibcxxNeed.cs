// Compiled by MSBuild's RoslynCodeTaskFactory (see VectorLm.Runtime.targets) and, for tests, into the test project.
// Why it exists: TorchSharp 0.107's libLibTorchSharp.so lists a version need on GLIBCXX_3.4.32 whose only symbol is
// an unreferenced marker. Hosts with an older libstdc++ (Debian 12 stops at 3.4.30) refuse to load the library.
// Marking that one version need weak (VER_FLG_WEAK in .gnu.version_r) lets the dynamic loader accept it.
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace VectorLm.Build
{
    /// <summary>Reads and edits the version-need table (.gnu.version_r) of an ELF64 little-endian shared object.</summary>
    public static class ElfVersionNeeds
    {
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlgWeak = 0x2;

        /// <summary>One entry of the table: the library that provides it, its version name and its flags.</summary>
        public readonly struct Need
        {
            public Need(string file, string version, ushort flags) { File = file; Version = version; Flags = flags; }
            public string File { get; }
            public string Version { get; }
            public ushort Flags { get; }
            public bool IsWeak => (Flags & VerFlgWeak) != 0;
        }

        /// <summary>Lists every version need in <paramref name="elf"/>.</summary>
        public static List<Need> Read(byte[] elf)
        {
            var needs = new List<Need>();
            Walk(elf, (file, version, flagsOffset) => needs.Add(new Need(file, version, BitConverter.ToUInt16(elf, flagsOffset))));
            return needs;
        }

        /// <summary>Sets VER_FLG_WEAK on every need of <paramref name="version"/>. Returns how many entries changed.</summary>
        public static int MarkWeak(byte[] elf, string version)
        {
            int changed = 0;
            Walk(elf, (file, name, flagsOffset) =>
            {
                if (name != version) return;
                ushort flags = BitConverter.ToUInt16(elf, flagsOffset);
                if ((flags & VerFlgWeak) != 0) return;
                flags |= VerFlgWeak;
                elf[flagsOffset] = (byte)flags;
                elf[flagsOffset + 1] = (byte)(flags >> 8);
                changed++;
            });
            return changed;
        }

        static void Walk(byte[] elf, Action<string, string, int> visit)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException("not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException("only 64-bit little-endian ELF files are supported");
            long shoff = (long)BitConverter.ToUInt64(elf, 0x28);
            int shentsize = BitConverter.ToUInt16(elf, 0x3A);
            int shnum = BitConverter.ToUInt16(elf, 0x3C);
            for (int i = 0; i < shnum; i++)
            {
                long sh = shoff + (long)i * shentsize;
                if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
                long offset = (long)BitConverter.ToUInt64(elf, (int)sh + 0x18);
                int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
                int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
                long strtab = (long)BitConverter.ToUInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
                long vn = offset;
                for (int n = 0; n < count; n++)
                {
                    int auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                    string file = CString(elf, strtab + BitConverter.ToUInt32(elf, (int)vn + 4));
                    long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                    for (int a = 0; a < auxCount; a++)
                    {
                        string name = CString(elf, strtab + BitConverter.ToUInt32(elf, (int)aux + 8));
                        visit(file, name, (int)aux + 4);
                        aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                    }
                    uint next = BitConverter.ToUInt32(elf, (int)vn + 12);
                    if (next == 0) break;
                    vn += next;
                }
            }
        }

        static string CString(byte[] data, long start)
        {
            long end = start;
            while (data[end] != 0) end++;
            return Encoding.ASCII.GetString(data, (int)start, (int)(end - start));
        }

        /// <summary>True when the host's libstdc++ defines <paramref name="version"/> (searched as its version string).</summary>
        public static bool HostLibstdcxxHas(string version, IEnumerable<string> candidates)
        {
            byte[] needle = Encoding.ASCII.GetBytes(version + "\0");
            foreach (var path in candidates)
            {
                if (!File.Exists(path)) continue;
                byte[] lib = File.ReadAllBytes(path);
                if (IndexOf(lib, needle) >= 0) return true;
                return false; // the first library found is the one the loader uses
            }
            return true; // no libstdc++ found: nothing to adapt to; leave the file untouched
        }

        static int IndexOf(byte[] haystack, byte[] needle)
        {
            for (int i = 0; i <= haystack.Length - needle.Length; i++)
            {
                int j = 0;
                while (j < needle.Length && haystack[i + j] == needle[j]) j++;
                if (j == needle.Length) return i;
            }
            return -1;
        }

        /// <summary>The libstdc++ paths the dynamic loader of common x86-64 distributions searches, in order.</summary>
        public static readonly string[] DefaultLibstdcxxPaths =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6",
            "/lib64/libstdc++.so.6",
            "/usr/lib/libstdc++.so.6",
        };
    }

#if !VECTORLM_ELF_TESTS
    /// <summary>MSBuild task: weakens the GLIBCXX need of the given libraries when the host's libstdc++ lacks it.</summary>
    public sealed class WeakenGlibcxxNeed : Microsoft.Build.Utilities.Task
    {
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        public string Version { get; set; } = "GLIBCXX_3.4.32";

        public override bool Execute()
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux))
                return true;
            if (ElfVersionNeeds.HostLibstdcxxHas(Version, ElfVersionNeeds.DefaultLibstdcxxPaths))
                return true;
            foreach (var item in Libraries)
            {
                string path = item.ItemSpec;
                if (!File.Exists(path)) continue;
                byte[] elf = File.ReadAllBytes(path);
                int changed = ElfVersionNeeds.MarkWeak(elf, Version);
                if (changed == 0) continue;
                // Write beside, then replace the directory entry: never a torn library, and a hard link into the
                // NuGet cache keeps the original bytes there.
                string tmp = path + ".vectorlm-tmp";
                File.WriteAllBytes(tmp, elf);
                File.Delete(path);
                File.Move(tmp, path);
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                    "VectorLm: marked the " + Version + " need of " + path + " weak (host libstdc++ lacks it).");
            }
            return true;
        }
    }
#endif
}
