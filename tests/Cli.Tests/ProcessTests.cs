using System.Diagnostics;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>The built <c>weld</c> executable, run as a real process: exit codes and streams as a shell sees them.</summary>
public sealed class ProcessTests
{
    [Fact]
    public void RealProcess_ExitCodesAndStreams_ForAnInputError_AUsageError_AndAnExample()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string missing = Path.Combine(temp, "no-such-model");
        string recipe = Recipes.Write(temp, $"""
            models:
              - model: {Recipes.ExampleModel("lm-base")}
              - model: {missing}
            merge_method: linear

            """);
        string output = Path.Combine(temp, "out");

        (int exitCode, string stdout, string stderr) = RunWeld("merge", recipe, "-o", output);

        Assert.True(exitCode == 1, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.StartsWith("weld: error: ", stderr, StringComparison.Ordinal);
        Assert.Contains(missing, stderr, StringComparison.Ordinal);
        Assert.Single(stderr.TrimEnd().Split('\n')); // one line, no stack trace
        Assert.Equal("", stdout);
        CliAssert.NoOutputLeft(output);

        (exitCode, stdout, stderr) = RunWeld("merge", recipe, "--no-such-flag");

        Assert.True(exitCode == 2, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.Contains("no-such-flag", stderr, StringComparison.Ordinal);
        Assert.StartsWith("weld ", stderr, StringComparison.Ordinal); // the real heading: weld's own name and version
        Assert.Equal("", stdout);

        // An example exactly as the README runs it: unmodified, from the repository root, mergekit's spelling.
        string merged = Path.Combine(temp, "slerp");
        (exitCode, stdout, stderr) = RunWeldIn(TestPaths.RepoRoot, "mergekit-yaml", "examples/slerp.yml", merged);

        Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
        Assert.True(File.Exists(Path.Combine(merged, "model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(Recipes.ExamplesFolder, "slerp.yml")), File.ReadAllText(Path.Combine(merged, "mergekit_config.yml")));
    }

    [Fact]
    public void Example_RunsUnchangedFromAnyWorkingDirectory()
    {
        // The examples name their models relative to their own folder: run one from an unrelated folder, with the
        // recipe named by a relative path too, and it merges the same bytes as from the repository root.
        string temp = TestPaths.NewTempDir("weld-cli");
        try
        {
            string elsewhere = Directory.CreateDirectory(Path.Combine(temp, "cwd")).FullName;
            string recipe = Path.GetRelativePath(elsewhere, Path.Combine(Recipes.ExamplesFolder, "ties.yml"));
            (int exitCode, string stdout, string stderr) = RunWeldIn(elsewhere, "merge", recipe, "-o", "out", "-q");
            Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
            (exitCode, stdout, stderr) = RunWeldIn(TestPaths.RepoRoot, "merge", "examples/ties.yml", "-o", Path.Combine(temp, "from-root"), "-q");
            Assert.True(exitCode == 0, $"exit {exitCode}\n{stdout}\n{stderr}");
            Assert.Equal(File.ReadAllBytes(Path.Combine(temp, "from-root", "model.safetensors")),
                File.ReadAllBytes(Path.Combine(elsewhere, "out", "model.safetensors")));
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
    }

    private static (int ExitCode, string Stdout, string Stderr) RunWeld(params string[] args) => RunWeldIn(Path.GetTempPath(), args);

    private static (int ExitCode, string Stdout, string Stderr) RunWeldIn(string workingDirectory, params string[] args)
    {
        // The Cli project is referenced, so weld.dll sits beside the test assembly.
        string weld = Path.Combine(AppContext.BaseDirectory, "weld.dll");
        Assert.True(File.Exists(weld), $"{weld} not found");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        start.ArgumentList.Add(weld);
        foreach (string arg in args) start.ArgumentList.Add(arg);

        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(60)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("weld did not exit within 60 s");
        }

        return (process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }
}
