namespace Weld.Tests;

/// <summary>Locates the repository and the shared model zoo from a test's output folder.</summary>
internal static class TestPaths
{
    /// <summary>The repository root (the folder holding Engine.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    /// <summary>
    /// The shared model zoo: <c>WELD_SHARED_MODELS</c>, else <c>../shared/models</c> beside the repository, else the
    /// copy in <c>tests/zoo</c> (its five small LMs are links to <c>examples/models</c>), so a plain clone tests too.
    /// </summary>
    public static string SharedModels { get; } = FindSharedModels();

    /// <summary>A model folder of the shared zoo by name (lm-base, lm-ft-c-sharded, mlp-digits-a, ...).</summary>
    public static string Model(string name) => Path.Combine(SharedModels, name);

    /// <summary>
    /// A fresh empty folder under the run's temporary root (<see cref="TestTemp"/>), deleted when the test that made it
    /// ends (made outside a test, e.g. by a fixture: when the run ends).
    /// </summary>
    public static string NewTempDir(string prefix = "weld-test")
    {
        string dir = Path.Combine(TestTemp.Root, $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        TestTemp.Track(dir);
        return dir;
    }

    /// <summary>
    /// A fresh empty folder for data shared between tests (a static cache built by whichever test comes first): it
    /// outlives the test that made it and is deleted when the run ends.
    /// </summary>
    public static string NewSharedTempDir(string prefix = "weld-shared")
    {
        string dir = Path.Combine(TestTemp.Root, $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        TestTemp.TrackForRun(dir);
        return dir;
    }

    private static string FindRepoRoot()
    {
        // The output folder sits inside the repository unless built with --artifacts-path elsewhere; then
        // the working directory (dotnet test runs from the repository) is the next guess.
        foreach (string start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            var dir = new DirectoryInfo(start);
            while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln")))
                dir = dir.Parent;
            if (dir != null) return dir.FullName;
        }
        throw new InvalidOperationException($"Engine.sln not found above {AppContext.BaseDirectory} or {Directory.GetCurrentDirectory()}");
    }

    private static string FindSharedModels()
    {
        string fromEnv = Environment.GetEnvironmentVariable("WELD_SHARED_MODELS") ?? "";
        if (fromEnv.Length > 0 && Directory.Exists(fromEnv)) return fromEnv;
        // The repository sits beside shared/ (…/main and …/shared); a git worktree may sit one level deeper.
        for (var dir = new DirectoryInfo(RepoRoot); dir != null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "shared", "models");
            if (Directory.Exists(candidate)) return candidate;
        }
        string copy = Path.Combine(RepoRoot, "tests", "zoo");
        if (Directory.Exists(copy)) return copy;
        throw new InvalidOperationException(
            "The shared model zoo (../shared/models beside the repository, or tests/zoo) was not found; set WELD_SHARED_MODELS.");
    }
}
