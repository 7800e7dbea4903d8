using Xunit;

namespace Weld.Cli.Tests;

/// <summary>Command-line usage: exit 2 for a bad command line (message on stderr), 0 for --help and --version.</summary>
public sealed class UsageTests
{
    [Theory]
    [InlineData("frobnicate")]
    [InlineData("merge-models", "recipe.yml")]
    public void UnknownVerb_ExitsWithUsageError(params string[] args)
    {
        CliResult result = WeldCli.Run(args);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("inspect", result.Stderr, StringComparison.Ordinal); // the verbs are listed
        // A usage error is a diagnostic: it goes to stderr and leaves stdout (maybe piped into a file) empty.
        Assert.Contains(args[0], result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", result.Stdout);
    }

    [Theory]
    [InlineData("frobnicate", "merge", "recipe.yml", "-o", "out", "--frobnicate")]
    [InlineData("yaml", "inspect", "model", "--yaml")]
    [InlineData("num-threads", "merge", "recipe.yml", "-o", "out", "-j", "many")]
    public void UnknownOrMalformedOption_ExitsWithUsageError(string named, params string[] args)
    {
        CliResult result = WeldCli.Run(args);

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains(named, result.Stderr, StringComparison.Ordinal);
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public void MissingRequiredArgument_ExitsWithUsageError()
    {
        CliResult result = WeldCli.Run("inspect");

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.Contains("MODEL", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void NoArguments_ExitsWithUsageError()
    {
        CliResult result = WeldCli.Run();

        Assert.True(result.ExitCode == 2, result.ToString());
        Assert.NotEqual("", result.Stderr);
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("help")]
    public void Help_ListsTheVerbsOnStdout(string flag)
    {
        CliResult result = WeldCli.Run(flag);

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("inspect", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("merge", result.Stdout, StringComparison.Ordinal);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public void VerbHelp_ListsTheVerbsOptions()
    {
        CliResult result = WeldCli.Run("merge", "--help");

        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Contains("--out-shard-size", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("--random-seed", result.Stdout, StringComparison.Ordinal);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public void Version_PrintsTheAssemblyVersion()
    {
        CliResult result = WeldCli.Run("--version");

        Assert.True(result.ExitCode == 0, result.ToString());
        string version = typeof(WeldCommandLine).Assembly.GetName().Version!.ToString(3);
        Assert.StartsWith($"weld {version}", result.Stdout, StringComparison.Ordinal);
        Assert.Equal("", result.Stderr);
    }
}
