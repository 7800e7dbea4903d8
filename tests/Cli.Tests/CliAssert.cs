using Xunit;

namespace Weld.Cli.Tests;

/// <summary>Checks shared by the error tests: the exit code, the message's form and the absence of partial output.</summary>
internal static class CliAssert
{
    /// <summary>Exit 0; the output is shown on failure so that a broken run explains itself.</summary>
    public static void Succeeded(CliResult result) =>
        Assert.True(result.ExitCode == 0, $"expected exit 0, got {result}");

    /// <summary>
    /// Exit 1, stderr starting with <c>weld: error:</c>, every <paramref name="mentions"/> in the message
    /// (ordinal, case-sensitive) and no stack trace or exception type name.
    /// </summary>
    public static void InputError(CliResult result, params string[] mentions)
    {
        Assert.True(result.ExitCode == 1, $"expected exit 1, got {result}");
        Assert.StartsWith("weld: error: ", result.Stderr, StringComparison.Ordinal);
        foreach (string mention in mentions)
            Assert.True(result.Stderr.Contains(mention, StringComparison.Ordinal), $"stderr does not mention '{mention}': {result.Stderr}");
        Assert.DoesNotContain("   at ", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", result.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("internal error", result.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Neither <paramref name="output"/> nor a hidden <c>.NAME.weld-partial-*</c> / <c>.NAME.weld-old-*</c> folder beside it exists.</summary>
    public static void NoOutputLeft(string output)
    {
        Assert.False(Directory.Exists(output) || File.Exists(output), $"{output} exists");
        string parent = Path.GetDirectoryName(Path.GetFullPath(output))!;
        if (!Directory.Exists(parent)) return;
        string prefix = "." + Path.GetFileName(output) + ".weld-";
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(parent), e => Path.GetFileName(e).StartsWith(prefix, StringComparison.Ordinal));
    }
}
