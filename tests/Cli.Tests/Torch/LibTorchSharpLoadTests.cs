using System.Diagnostics;
using System.Runtime.InteropServices;
using Weld.Build;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Torch;

/// <summary>
/// The guarded GLIBCXX_3.4.32 load step (build/LibTorchSharp.targets): what it does to the build-output copy of
/// libLibTorchSharp.so, that it is idempotent and refuses what it must, and (in a subprocess, by the real loader)
/// that the unpatched library still fails to load on a system whose libstdc++ lacks GLIBCXX_3.4.32.
/// </summary>
public class LibTorchSharpLoadTests
{
    private const string Library = "libLibTorchSharp.so";

    private static string OutputCopy => Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", Library);

    private static string PackageCopy
    {
        get
        {
            string root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } fromEnv
                ? fromEnv
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            return Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", Library);
        }
    }

    private static string[] SystemFolders => GlibcxxMarkerPatch.SystemLibraryFolders(
        RuntimeInformation.OSArchitecture == Architecture.Arm64 ? "aarch64-linux-gnu" : "x86_64-linux-gnu");

    /// <summary>Whether this system's libstdc++ defines the marker's version (then the step is a no-op).</summary>
    private static bool SystemHasMarkerVersion()
    {
        foreach (string folder in SystemFolders)
        {
            string path = Path.Combine(folder, "libstdc++.so.6");
            if (File.Exists(path)) return new GlibcxxMarkerPatch.Elf(File.ReadAllBytes(path)).ReadDefinitions().Contains(GlibcxxMarkerPatch.MarkerVersion);
        }

        throw new InvalidOperationException("no libstdc++.so.6 in the system library folders");
    }

    private static bool IsLinuxX64 => OperatingSystem.IsLinux() && RuntimeInformation.OSArchitecture == Architecture.X64;

    [Fact]
    public void The_build_output_copy_is_patched_here_and_the_package_cache_copy_is_not()
    {
        if (!IsLinuxX64) return; // the step is a no-op off Linux; nothing to check there
        byte[] output = File.ReadAllBytes(OutputCopy), package = File.ReadAllBytes(PackageCopy);
        Assert.Equal(package.Length, output.Length);
        GlibcxxMarkerPatch.Need cacheNeed = MarkerNeed(package);
        Assert.Equal(0, cacheNeed.Flags & 2);
        int differences = 0;
        for (int i = 0; i < output.Length; i++) if (output[i] != package[i]) differences++;
        if (SystemHasMarkerVersion())
        {
            Assert.Equal(0, differences);
            return;
        }

        Assert.Equal(2, MarkerNeed(output).Flags & 2);
        Assert.Equal(1, differences); // one byte: the weak bit of that Vernaux's vna_flags
        Assert.Equal(package[cacheNeed.FlagsOffset] | 2, output[cacheNeed.FlagsOffset]);
    }

    [Fact]
    public void The_patch_applies_once_and_is_idempotent()
    {
        if (!IsLinuxX64) return;
        string copy = Path.Combine(TestPaths.NewTempDir(), Library);
        File.Copy(PackageCopy, copy);
        byte[] original = File.ReadAllBytes(copy);
        PatchOutcome first = GlibcxxMarkerPatch.Apply(copy, SystemFolders, out string message);
        byte[] once = File.ReadAllBytes(copy);
        PatchOutcome second = GlibcxxMarkerPatch.Apply(copy, SystemFolders, out _);
        if (SystemHasMarkerVersion())
        {
            Assert.Equal(PatchOutcome.NotNeeded, first);
            Assert.Equal(original, once);
            return;
        }

        Assert.True(first == PatchOutcome.Patched, message);
        Assert.Equal(PatchOutcome.AlreadyPatched, second);
        Assert.Equal(once, File.ReadAllBytes(copy));
        Assert.NotEqual(original, once);
    }

    [Fact]
    public void The_patch_refuses_when_another_version_need_is_unmet()
    {
        if (!IsLinuxX64) return;
        string copy = Path.Combine(TestPaths.NewTempDir(), Library);
        File.Copy(PackageCopy, copy);
        byte[] original = File.ReadAllBytes(copy);
        // With no system folders, libc.so.6, libm.so.6, libgcc_s.so.1 and libstdc++.so.6 are all "not found".
        PatchOutcome outcome = GlibcxxMarkerPatch.Apply(copy, [], out string message);
        Assert.Equal(PatchOutcome.Refused, outcome);
        Assert.Contains("GLIBC_2.34 of libc.so.6 (library not found)", message, StringComparison.Ordinal);
        Assert.Equal(original, File.ReadAllBytes(copy));
    }

    [Fact]
    public void The_marker_is_the_only_symbol_of_its_version_and_unrelocated_while_libc_symbols_are_relocated()
    {
        if (!IsLinuxX64) return;
        var elf = new GlibcxxMarkerPatch.Elf(File.ReadAllBytes(PackageCopy));
        List<GlibcxxMarkerPatch.Need> needs = elf.ReadNeeds();
        GlibcxxMarkerPatch.Need marker = needs.Single(n => n.Version == GlibcxxMarkerPatch.MarkerVersion);
        List<int> markerSymbols = elf.SymbolsOfVersion(marker.Index, out List<string> names);
        Assert.Equal([GlibcxxMarkerPatch.MarkerSymbol], names);
        Assert.False(elf.IsRelocated(markerSymbols));
        // The relocation scan finds what is relocated: the GLIBC_2.2.5 symbols of libc (memcpy, malloc, ...).
        GlibcxxMarkerPatch.Need libc = needs.Single(n => n.File == "libc.so.6" && n.Version == "GLIBC_2.2.5");
        Assert.True(elf.IsRelocated(elf.SymbolsOfVersion(libc.Index, out _)));
    }

    [Fact]
    public void Control_the_unpatched_library_fails_to_load_in_a_subprocess_and_the_patched_copy_loads()
    {
        if (!IsLinuxX64) return;
        string nativeFolder = Path.GetDirectoryName(OutputCopy)!;
        string unpatched = Path.Combine(TestPaths.NewTempDir(), Library);
        File.Copy(PackageCopy, unpatched);
        // The real loader in a fresh process: LD_PRELOAD maps the library (and libtorch) before /bin/true runs.
        (int controlCode, string controlError) = RunPreloaded(unpatched, nativeFolder);
        (int patchedCode, string patchedError) = RunPreloaded(OutputCopy, nativeFolder);
        Assert.True(patchedCode == 0, patchedError);
        if (SystemHasMarkerVersion())
        {
            Assert.True(controlCode == 0, controlError);
            return;
        }

        Assert.NotEqual(0, controlCode);
        Assert.Contains("version `GLIBCXX_3.4.32' not found", controlError, StringComparison.Ordinal);
    }

    private static GlibcxxMarkerPatch.Need MarkerNeed(byte[] image) =>
        new GlibcxxMarkerPatch.Elf(image).ReadNeeds().Single(n => n.File == "libstdc++.so.6" && n.Version == GlibcxxMarkerPatch.MarkerVersion);

    private static (int ExitCode, string Error) RunPreloaded(string library, string dependencyFolder)
    {
        var start = new ProcessStartInfo("/bin/true") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.Environment["LD_PRELOAD"] = library;
        start.Environment["LD_LIBRARY_PATH"] = dependencyFolder;
        using Process process = Process.Start(start)!;
        string error = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, error);
    }
}
