// The guarded GLIBCXX_3.4.32 load step for TorchSharp's libLibTorchSharp.so (see docs/evaluation.md).
// Compiled twice: by MSBuild's RoslynCodeTaskFactory as the inline task WeakenGlibcxxMarker (build/LibTorchSharp.targets),
// and into the tests with WELD_PATCHER_NO_TASK defined (the pure ELF logic, without MSBuild types).
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace Weld.Build
{
    /// <summary>What <see cref="GlibcxxMarkerPatch.Apply"/> did.</summary>
    public enum PatchOutcome
    {
        /// <summary>Nothing to do: not a Linux ELF need for GLIBCXX_3.4.32, or the system's libstdc++ already defines it.</summary>
        NotNeeded,
        /// <summary>The GLIBCXX_3.4.32 need was flagged weak.</summary>
        Patched,
        /// <summary>The need was already weak (an earlier run patched this copy).</summary>
        AlreadyPatched,
        /// <summary>Left unchanged: the patch would not make the library load, or could hide a real dependency.</summary>
        Refused,
    }

    /// <summary>
    /// Flags the one <c>GLIBCXX_3.4.32</c> version need of libLibTorchSharp.so as weak (<c>VER_FLG_WEAK</c> in its
    /// <c>Elf64_Vernaux</c>), so that glibc's loader accepts a libstdc++ (GCC 12, Debian 12) that lacks it. That version
    /// covers only <c>_ZSt21ios_base_library_initv</c>, a marker GCC 13+ emits from &lt;iostream&gt; that no relocation
    /// uses; the patch refuses whenever that is not so, or when any other version need is unmet (then it would not help).
    /// </summary>
    public static class GlibcxxMarkerPatch
    {
        public const string MarkerVersion = "GLIBCXX_3.4.32";
        public const string MarkerSymbol = "_ZSt21ios_base_library_initv";
        private const ushort VerFlagWeak = 0x2;
        private const uint ShtRela = 4, ShtRel = 9, ShtDynsym = 11;
        private const uint ShtVerdef = 0x6ffffffd, ShtVerneed = 0x6ffffffe, ShtVersym = 0x6fffffff;

        /// <summary>The folders searched for the libraries a need names (besides the library's own folder).</summary>
        public static string[] SystemLibraryFolders(string machineTriplet) => new[]
        {
            "/lib/" + machineTriplet, "/usr/lib/" + machineTriplet, "/lib64", "/usr/lib64", "/lib", "/usr/lib",
        };

        /// <summary>Checks and, when safe and needed, patches <paramref name="libraryPath"/> (replacing the file, never writing through a link).</summary>
        public static PatchOutcome Apply(string libraryPath, IReadOnlyList<string> libraryFolders, out string message)
        {
            byte[] image = File.ReadAllBytes(libraryPath);
            PatchOutcome outcome = Plan(image, libraryPath, libraryFolders, out message, out int flagsOffset);
            if (outcome != PatchOutcome.Patched) return outcome;
            // A patched copy moved over the old file: a hard link into the NuGet cache is replaced, never written through.
            string temporary = libraryPath + ".weld-patch";
            File.Copy(libraryPath, temporary, overwrite: true); // keeps the file mode
            using (var stream = new FileStream(temporary, FileMode.Open, FileAccess.Write))
            {
                stream.Position = flagsOffset; // vna_flags is little-endian: the weak bit is in its first byte
                stream.WriteByte((byte)(image[flagsOffset] | VerFlagWeak));
            }

            File.Delete(libraryPath);
            File.Move(temporary, libraryPath);
            return outcome;
        }

        /// <summary>Decides what to do; <paramref name="flagsOffset"/> is the file offset of the need's vna_flags.</summary>
        public static PatchOutcome Plan(byte[] image, string libraryPath, IReadOnlyList<string> libraryFolders, out string message, out int flagsOffset)
        {
            flagsOffset = -1;
            Elf elf;
            try
            {
                elf = new Elf(image);
            }
            catch (FormatException e)
            {
                message = $"{libraryPath}: {e.Message}; left unchanged.";
                return PatchOutcome.Refused;
            }

            List<Need> needs = elf.ReadNeeds();
            Need? marker = null;
            foreach (Need need in needs)
                if (need.File == "libstdc++.so.6" && need.Version == MarkerVersion) marker = need;
            if (marker is null)
            {
                message = $"{libraryPath}: needs no {MarkerVersion}; nothing to do.";
                return PatchOutcome.NotNeeded;
            }

            // Every need is checked against the library that would satisfy it.
            string folder = Path.GetDirectoryName(Path.GetFullPath(libraryPath)) ?? ".";
            var definitions = new Dictionary<string, HashSet<string>?>(StringComparer.Ordinal);
            var unmet = new List<string>();
            bool markerMet = false;
            foreach (Need need in needs)
            {
                if (!definitions.TryGetValue(need.File, out HashSet<string>? defined))
                    definitions[need.File] = defined = FindDefinitions(need.File, folder, libraryFolders);
                bool met = defined is not null && defined.Contains(need.Version);
                if (ReferenceEquals(need, marker)) markerMet = met;
                else if (!met) unmet.Add($"{need.Version} of {need.File}" + (defined is null ? " (library not found)" : ""));
            }

            if (unmet.Count > 0)
            {
                message = $"{libraryPath}: refused: needs {string.Join(", ", unmet)} besides {MarkerVersion}; flagging the marker weak would not make it load.";
                return PatchOutcome.Refused;
            }

            if (markerMet)
            {
                message = $"{libraryPath}: this system's libstdc++.so.6 defines {MarkerVersion}; nothing to do.";
                return PatchOutcome.NotNeeded;
            }

            // The version must cover nothing but the marker symbol, and no relocation may use it.
            List<int> symbols = elf.SymbolsOfVersion(marker.Index, out List<string> names);
            if (names.Count != 1 || names[0] != MarkerSymbol)
            {
                message = $"{libraryPath}: refused: {MarkerVersion} covers [{string.Join(", ", names)}], not just {MarkerSymbol}.";
                return PatchOutcome.Refused;
            }

            if (elf.IsRelocated(symbols))
            {
                message = $"{libraryPath}: refused: a relocation uses {MarkerSymbol}; it is not a bare marker here.";
                return PatchOutcome.Refused;
            }

            if ((marker.Flags & VerFlagWeak) != 0)
            {
                message = $"{libraryPath}: {MarkerVersion} is already flagged weak.";
                return PatchOutcome.AlreadyPatched;
            }

            flagsOffset = marker.FlagsOffset;
            message = $"{libraryPath}: flagged the {MarkerVersion} need (only {MarkerSymbol}, never relocated) weak.";
            return PatchOutcome.Patched;
        }

        /// <summary>The version names <paramref name="file"/> defines, from the first copy found; null when none is found.</summary>
        private static HashSet<string>? FindDefinitions(string file, string ownFolder, IReadOnlyList<string> folders)
        {
            var candidates = new List<string> { ownFolder };
            candidates.AddRange(folders);
            foreach (string candidate in candidates)
            {
                string path = Path.Combine(candidate, file);
                if (!File.Exists(path)) continue;
                try
                {
                    return new Elf(File.ReadAllBytes(path)).ReadDefinitions();
                }
                catch (FormatException)
                {
                    // A linker script or another architecture's file: keep looking.
                }
            }

            return null;
        }

        /// <summary>One Elf64_Vernaux: the file it is needed from, the version name, its index, flags and where the flags are.</summary>
        public sealed class Need
        {
            public Need(string file, string version, ushort index, ushort flags, int flagsOffset)
            {
                File = file;
                Version = version;
                Index = index;
                Flags = flags;
                FlagsOffset = flagsOffset;
            }

            public string File { get; }
            public string Version { get; }
            public ushort Index { get; }
            public ushort Flags { get; }
            public int FlagsOffset { get; }
        }

        /// <summary>A little-endian ELF64 image read through its section headers (bounds-checked: bad input is a FormatException).</summary>
        public sealed class Elf
        {
            private readonly byte[] _image;
            private readonly List<(uint Type, long Offset, long Size, uint Link, uint Info, long EntrySize)> _sections = new();

            public Elf(byte[] image)
            {
                _image = image;
                if (image.Length < 64 || image[0] != 0x7f || image[1] != (byte)'E' || image[2] != (byte)'L' || image[3] != (byte)'F')
                    throw new FormatException("not an ELF file");
                if (image[4] != 2 || image[5] != 1) throw new FormatException("not a little-endian 64-bit ELF file");
                long sectionTable = I64(0x28);
                int entrySize = U16(0x3A), count = U16(0x3C);
                if (entrySize < 64) throw new FormatException("bad section header size");
                for (int i = 0; i < count; i++)
                {
                    int at = Checked(sectionTable + (long)i * entrySize, 64);
                    _sections.Add((U32(at + 4), I64(at + 24), I64(at + 32), U32(at + 40), U32(at + 44), I64(at + 56)));
                }
            }

            public List<Need> ReadNeeds()
            {
                var result = new List<Need>();
                foreach (var s in _sections)
                {
                    if (s.Type != ShtVerneed) continue;
                    var strings = _sections[(int)s.Link];
                    long entry = s.Offset;
                    for (uint n = 0; n < s.Info; n++)
                    {
                        int at = Checked(entry, 16);
                        int count = U16(at + 2);
                        string file = String(strings.Offset, strings.Size, U32(at + 4));
                        long aux = entry + U32(at + 8);
                        for (int a = 0; a < count; a++)
                        {
                            int x = Checked(aux, 16);
                            result.Add(new Need(file, String(strings.Offset, strings.Size, U32(x + 8)), U16(x + 6), U16(x + 4), x + 4));
                            aux += U32(x + 12);
                        }

                        uint next = U32(at + 12);
                        if (next == 0) break;
                        entry += next;
                    }
                }

                return result;
            }

            public HashSet<string> ReadDefinitions()
            {
                var result = new HashSet<string>(StringComparer.Ordinal);
                foreach (var s in _sections)
                {
                    if (s.Type != ShtVerdef) continue;
                    var strings = _sections[(int)s.Link];
                    long entry = s.Offset;
                    for (uint n = 0; n < s.Info; n++)
                    {
                        int at = Checked(entry, 20);
                        int x = Checked(entry + U32(at + 12), 8);
                        result.Add(String(strings.Offset, strings.Size, U32(x)));
                        uint next = U32(at + 16);
                        if (next == 0) break;
                        entry += next;
                    }
                }

                return result;
            }

            /// <summary>Indices (in .dynsym) and names of the symbols whose .gnu.version entry is <paramref name="versionIndex"/>.</summary>
            public List<int> SymbolsOfVersion(ushort versionIndex, out List<string> names)
            {
                var indices = new List<int>();
                names = new List<string>();
                foreach (var versions in _sections)
                {
                    if (versions.Type != ShtVersym) continue;
                    var symbols = _sections[(int)versions.Link];
                    var strings = _sections[(int)symbols.Link];
                    long count = versions.Size / 2;
                    for (int i = 0; i < count; i++)
                    {
                        if ((U16(Checked(versions.Offset + 2L * i, 2)) & 0x7fff) != versionIndex) continue;
                        int symbol = Checked(symbols.Offset + 24L * i, 24);
                        indices.Add(i);
                        names.Add(String(strings.Offset, strings.Size, U32(symbol)));
                    }
                }

                return indices;
            }

            /// <summary>Whether any REL/RELA entry against the dynamic symbol table names one of <paramref name="symbols"/>.</summary>
            public bool IsRelocated(List<int> symbols)
            {
                var wanted = new HashSet<long>();
                foreach (int s in symbols) wanted.Add(s);
                foreach (var s in _sections)
                {
                    if (s.Type != ShtRela && s.Type != ShtRel) continue;
                    if (_sections[(int)s.Link].Type != ShtDynsym) continue;
                    long step = s.EntrySize > 0 ? s.EntrySize : (s.Type == ShtRela ? 24 : 16);
                    for (long at = s.Offset; at + step <= s.Offset + s.Size; at += step)
                        if (wanted.Contains((long)((ulong)I64(Checked(at, (int)step) + 8) >> 32))) return true;
                }

                return false;
            }

            private string String(long tableOffset, long tableSize, uint offset)
            {
                if (offset >= tableSize) throw new FormatException("string offset outside its table");
                int start = Checked(tableOffset + offset, 1), end = start;
                while (end < _image.Length && _image[end] != 0) end++;
                return Encoding.UTF8.GetString(_image, start, end - start);
            }

            private int Checked(long offset, int length)
            {
                if (offset < 0 || offset + length > _image.Length) throw new FormatException("a table points outside the file");
                return (int)offset;
            }

            // Little-endian reads by hand: the inline task compiles against netstandard2.0 (no BinaryPrimitives).
            private ushort U16(int at)
            {
                int i = Checked(at, 2);
                return (ushort)(_image[i] | _image[i + 1] << 8);
            }

            private uint U32(int at) => (uint)(U16(at) | (uint)U16(at + 2) << 16);

            private long I64(int at) => (long)(U32(at) | (ulong)U32(at + 4) << 32);
        }
    }

#if !WELD_PATCHER_NO_TASK
    /// <summary>MSBuild task: runs <see cref="GlibcxxMarkerPatch"/> on Linux over each given copy of libLibTorchSharp.so.</summary>
    public sealed class WeakenGlibcxxMarker : Microsoft.Build.Utilities.Task
    {
        /// <summary>Output copies of libLibTorchSharp.so (missing ones are skipped).</summary>
        [Microsoft.Build.Framework.Required]
        public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

        /// <summary>The NuGet package root: a library under it is never touched.</summary>
        public string PackageRoot { get; set; } = "";

        public override bool Execute()
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux)) return true;
            string triplet = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64
                ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
            foreach (var item in Libraries)
            {
                string path = Path.GetFullPath(item.ItemSpec);
                if (!File.Exists(path)) continue;
                if (PackageRoot.Length > 0 && path.StartsWith(Path.GetFullPath(PackageRoot), StringComparison.Ordinal))
                {
                    Log.LogWarning($"{path}: is in the NuGet package cache; the GLIBCXX marker patch only touches build output copies.");
                    continue;
                }

                PatchOutcome outcome = GlibcxxMarkerPatch.Apply(path, GlibcxxMarkerPatch.SystemLibraryFolders(triplet), out string message);
                if (outcome == PatchOutcome.Refused) Log.LogWarning(message);
                else Log.LogMessage(outcome == PatchOutcome.Patched ? Microsoft.Build.Framework.MessageImportance.High : Microsoft.Build.Framework.MessageImportance.Low, message);
            }

            return !Log.HasLoggedErrors;
        }
    }
#endif
}
