using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Docs;

/// <summary>
/// Every shell block of the README and <c>docs/</c> runs, so the docs cannot drift from the code. A page's blocks run
/// in order, as one reader would type them, in one fresh folder that sees the repository's <c>examples/</c> and
/// <c>tests/</c> (read-only inputs) and has <c>weld</c> on its PATH (the built CLI beside this assembly).
/// A block that cannot run here says why in a <c>&lt;!-- not run in tests: REASON --&gt;</c> line before its fence.
/// </summary>
public sealed class DocsCommandTests
{
    /// <summary>How the README and the docs say to run weld from a clone; run here as the built <c>weld</c>.</summary>
    private const string FromClone = "dotnet run --project src/Cli -c Release -- ";

    /// <summary>The test command of the README's first block: what <c>.ci/run</c> runs, never run from inside the suite.</summary>
    private const string SuiteCommand = "dotnet test Engine.sln -c Release";

    public static TheoryData<string> Pages() => new(DocBlocks.Pages());

    [Fact]
    public void Docs_HaveShellBlocks_AndEverySkipSaysWhy()
    {
        // Guards the theory below against running over nothing, and skips against going unexplained.
        List<DocBlock> shell = DocBlocks.Pages().SelectMany(DocBlocks.Of).Where(b => b.IsShell).ToList();
        Assert.True(shell.Count(b => b.NotRunReason is null) >= 10, $"only {shell.Count} shell blocks found");
        foreach (DocBlock block in shell.Where(b => b.NotRunReason is not null))
            Assert.False(string.IsNullOrWhiteSpace(block.NotRunReason), $"{block.Where}: a skipped block must say why");
    }

    [Fact]
    public void ReadmeStartsWithTheTwoCommands_AndCiRunsTheSecond()
    {
        DocBlock first = DocBlocks.Of("README.md").First();
        string[] commands = first.Text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, commands.Length);
        Assert.StartsWith(FromClone + "merge examples/", commands[0], StringComparison.Ordinal);
        Assert.Equal(SuiteCommand, commands[1]);
        string ci = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, ".ci", "run"));
        Assert.Contains(SuiteCommand + " ", ci, StringComparison.Ordinal);
        int firstFence = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "README.md")).ToList().FindIndex(l => l.StartsWith("```", StringComparison.Ordinal));
        Assert.InRange(firstFence, 0, 5); // "the README's first lines"
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public void RelativeLinks_Resolve(string page)
    {
        string folder = Path.GetDirectoryName(Path.Combine(TestPaths.RepoRoot, page))!;
        string text = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, page));
        foreach (System.Text.RegularExpressions.Match link in System.Text.RegularExpressions.Regex.Matches(text, @"\]\((?<target>[^)#\s]+)(#[^)]*)?\)"))
        {
            string target = link.Groups["target"].Value;
            if (target.Contains("://", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal)) continue;
            string path = Path.GetFullPath(Path.Combine(folder, target));
            Assert.True(File.Exists(path) || Directory.Exists(path), $"{page}: the link ({target}) points at nothing");
        }
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public void ShellBlocks_Run(string page)
    {
        List<DocBlock> blocks = DocBlocks.Of(page).Where(b => b.IsShell && b.NotRunReason is null).ToList();
        if (blocks.Count == 0) return; // a page without commands: nothing to check

        string temp = TestPaths.NewTempDir("weld-docs");
        string bin = Directory.CreateDirectory(Path.Combine(temp, ".bin")).FullName;
        string work = Directory.CreateDirectory(Path.Combine(temp, "work")).FullName;
        foreach (string input in new[] { "examples", "tests" })
            Directory.CreateSymbolicLink(Path.Combine(work, input), Path.Combine(TestPaths.RepoRoot, input));
        DocShell.WriteWeldShim(bin);

        foreach (DocBlock block in blocks)
        {
            string script = block.Text.Replace(FromClone, "weld ", StringComparison.Ordinal);
            // The suite's own command is checked above, never run from inside the suite.
            script = string.Join('\n', script.Split('\n').Where(l => l.Trim() != SuiteCommand));
            (int exit, string output) = DocShell.Run(work, bin, script);
            Assert.True(exit == 0, $"{block.Where}: the block exited {exit}\n--- block ---\n{block.Text}\n--- output ---\n{output}");
        }
    }
}
