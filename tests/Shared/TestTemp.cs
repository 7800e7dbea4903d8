using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.CompilerServices;
using Weld.Tests;
using Xunit;
using Xunit.Sdk;

[assembly: CleanTempDirs]

namespace Weld.Tests;

/// <summary>
/// The test run's own temporary root. At load, each test assembly points <c>TMPDIR</c> at a fresh
/// <c>weld-tests-PID-ID</c> folder under the system's temporary folder, so every temporary file of the run — the
/// tests' folders (<see cref="TestPaths.NewTempDir"/>), Weld's own (LoRA folds, aligned copies), child processes' —
/// lands there. A folder made inside a test is deleted when the test ends (<see cref="CleanTempDirsAttribute"/>); one
/// made outside any test (a constructor, a class fixture) when the run's guard runs; the guard
/// (<c>TempHygieneTests</c>, run after every parallel test) then fails if anything else is left in the root, and
/// removes the root.
/// </summary>
internal static class TestTemp
{
    private static readonly AsyncLocal<List<string>?> s_scope = new();
    private static readonly ConcurrentBag<string> s_unscoped = [];

    /// <summary>The run's temporary root (TMPDIR while the tests run).</summary>
    public static string Root { get; private set; } = "";

#pragma warning disable CA2255 // a test assembly, not a library: it must redirect TMPDIR before any test runs
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize()
    {
        string system = Path.GetTempPath();
        Root = Path.Combine(system, $"weld-tests-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(Root);
        Environment.SetEnvironmentVariable("TMPDIR", Root);
        // A filtered run never reaches the guard: do not let its folders pile up either.
        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(Root);
    }

    /// <summary>Records a folder to delete when the current test ends (or at the guard, outside a test).</summary>
    public static void Track(string folder)
    {
        if (s_scope.Value is { } scope)
            lock (scope) scope.Add(folder);
        else
            s_unscoped.Add(folder);
    }

    /// <summary>Records a folder to delete at the end of the run (shared by several tests).</summary>
    public static void TrackForRun(string folder) => s_unscoped.Add(folder);

    /// <summary>True inside a test (the per-test scope is open), so folders made now are deleted when it ends.</summary>
    internal static bool InTest => s_scope.Value is not null;

    internal static void BeginTest() => s_scope.Value = [];

    internal static void EndTest()
    {
        List<string>? scope = s_scope.Value;
        s_scope.Value = null;
        if (scope is null) return;
        lock (scope)
            foreach (string folder in scope) TryDelete(folder);
    }

    /// <summary>Deletes the folders made outside tests and returns what else is left in the root.</summary>
    public static IReadOnlyList<string> Leftovers()
    {
        while (s_unscoped.TryTake(out string? folder)) TryDelete(folder);
        return Directory.Exists(Root) ? Directory.EnumerateFileSystemEntries(Root).Select(e => Path.GetFileName(e)).OfType<string>().ToList() : [];
    }

    private static void TryDelete(string folder)
    {
        try
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // a file still open (Windows) or a permission test: the guard reports what is left
        }
    }
}

/// <summary>Deletes, after each test, the temporary folders the test made with <see cref="TestPaths.NewTempDir"/>.</summary>
[AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Class | AttributeTargets.Method)]
internal sealed class CleanTempDirsAttribute : BeforeAfterTestAttribute
{
    public override void Before(MethodInfo methodUnderTest) => TestTemp.BeginTest();

    public override void After(MethodInfo methodUnderTest) => TestTemp.EndTest();
}

/// <summary>Runs after every parallel test collection of the assembly (xunit runs non-parallel collections last).</summary>
[CollectionDefinition("temp-hygiene", DisableParallelization = true)]
public sealed class TempHygieneCollection;

/// <summary>The guard: a test or fixture that leaves files in the run's temporary root fails the run.</summary>
[Collection("temp-hygiene")]
public sealed class TempHygieneTests
{
    [Fact]
    public void A_folder_made_in_a_test_is_deleted_when_the_test_ends()
    {
        Assert.True(TestTemp.InTest, "the assembly-level CleanTempDirs attribute did not open a scope for this test");
        string folder = TestPaths.NewTempDir("weld-scope-check");
        TestTemp.EndTest(); // what the attribute does after the test
        Assert.False(Directory.Exists(folder));
        TestTemp.BeginTest();
    }

    [Fact]
    public void Nothing_is_left_in_the_runs_temporary_root()
    {
        IReadOnlyList<string> left = TestTemp.Leftovers();
        Assert.True(left.Count == 0,
            $"left in {TestTemp.Root} by a test, fixture or Weld itself (delete it, or make it with TestPaths.NewTempDir): {string.Join(", ", left)}");
    }
}
