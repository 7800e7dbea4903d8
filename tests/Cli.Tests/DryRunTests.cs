using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>merge --dry-run</c> validates and prints the plan, and writes nothing.</summary>
public sealed class DryRunTests
{
    [Fact]
    public void DryRun_PrintsThePlanAndCreatesNoOutput()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample("ties.yml", temp);
        string output = Path.Combine(temp, "out");

        CliResult result = WeldCli.Run("merge", recipe, "-o", output, "--dry-run");

        CliAssert.Succeeded(result);
        CliAssert.NoOutputLeft(output);
        Assert.Equal([Path.GetFileName(recipe)], Directory.EnumerateFileSystemEntries(temp).Select(Path.GetFileName));
        string[] lines = result.Stdout.ReplaceLineEndings("\n").Split('\n');
        Assert.Contains("method:   ties", lines);
        Assert.Contains("tensors:  39", lines);
        // One BF16 file: 853,120 elements × 2 bytes.
        Assert.Contains("write:    1,706,240 bytes in 1 shard(s)", lines);
        Assert.Contains("  model.safetensors: 39 tensors, 1,706,240 bytes", lines);
        foreach (string model in new[] { "lm-base", "lm-ft-c", "lm-ft-python", "lm-ft-markup" })
            Assert.Contains(lines, l => l.StartsWith("model ", StringComparison.Ordinal) && l.EndsWith(Recipes.ExampleModel(model), StringComparison.Ordinal));
        // The default memory limit says what it picked and why.
        Assert.Contains(lines, l => l.StartsWith("memory:   --memory-limit ", StringComparison.Ordinal) && l.Contains("of memory available", StringComparison.Ordinal));
        // A line per output tensor, naming its inputs.
        Assert.Equal(39, lines.Count(l => l.Contains(" <- ", StringComparison.Ordinal)));
    }

    [Fact]
    public void DryRun_ReportsRecipeErrorsLikeARealMerge()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string text = File.ReadAllText(Recipes.WriteExample("ties.yml", temp)).Replace("density: 0.3", "density: 1.5", StringComparison.Ordinal);
        string recipe = Recipes.Write(temp, text, "bad.yml");

        CliResult result = WeldCli.Run("merge", recipe, "--dry-run");

        CliAssert.InputError(result, $"{recipe}:{Recipes.LineOf(text, "density: 1.5")}", "density");
        Assert.Equal("", result.Stdout);
    }
}
