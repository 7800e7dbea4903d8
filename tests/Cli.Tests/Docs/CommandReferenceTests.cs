using System.Text.RegularExpressions;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Docs;

/// <summary>docs/commands.md documents every command weld has and every flag each one takes.</summary>
public sealed partial class CommandReferenceTests
{
    private static readonly string Reference = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "docs", "commands.md"));

    /// <summary>The commands <c>weld --help</c> lists (the verbs CommandLineParser knows).</summary>
    public static TheoryData<string> Commands() => new(Verbs());

    private static List<string> Verbs()
    {
        CliResult help = WeldCli.Run("--help");
        return VerbLine().Matches(help.Stdout + help.Stderr).Select(m => m.Groups["verb"].Value)
            .Where(v => v is not "help" and not "version").Distinct().ToList();
    }

    [Fact]
    public void HelpListsTheCommands()
    {
        // Guards the theory below against running over nothing.
        List<string> verbs = Verbs();
        Assert.Contains("merge", verbs);
        Assert.True(verbs.Count >= 13, string.Join(", ", verbs));
    }

    [Theory]
    [MemberData(nameof(Commands))]
    public void EveryFlagOfTheCommand_IsInItsSection(string verb)
    {
        Match heading = Regex.Match(Reference, $@"^## `weld {Regex.Escape(verb)}`.*$", RegexOptions.Multiline);
        Assert.True(heading.Success, $"docs/commands.md has no section \"## `weld {verb}`\"");
        int next = Reference.IndexOf("\n## ", heading.Index + heading.Length, StringComparison.Ordinal);
        string section = Reference[heading.Index..(next < 0 ? Reference.Length : next)];

        CliResult help = WeldCli.Run(verb, "--help");
        var flags = FlagToken().Matches(help.Stdout + help.Stderr).Select(m => m.Value)
            .Where(f => f is not "--help" and not "--version").Distinct().ToList();
        Assert.NotEmpty(flags);
        foreach (string flag in flags)
            Assert.True(Regex.IsMatch(section, $@"`[^`]*{Regex.Escape(flag)}(?![\w-])"), $"docs/commands.md, weld {verb}: flag {flag} is not documented");
    }

    [GeneratedRegex(@"^  (?<verb>[a-z][a-z-]+)\s{2,}", RegexOptions.Multiline)]
    private static partial Regex VerbLine();

    /// <summary>A flag at the start of a help entry: "  -o, --output" or "  --text".</summary>
    [GeneratedRegex(@"(?<=^  (?:-\w, )?)--[a-z][a-z0-9-]*", RegexOptions.Multiline)]
    private static partial Regex FlagToken();
}
