using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Docs;

/// <summary>
/// docs/embedding.md's console app (examples/embed) merges and evaluates, and every C# block of the docs is code that
/// compiles here: a verbatim excerpt of a file under examples/ (which this project or the example app compiles).
/// </summary>
public sealed class EmbedExampleTests
{
    [Fact]
    public void EmbedExample_MergesAndEvaluates()
    {
        string temp = TestPaths.NewTempDir("weld-embed");
        string output = Path.Combine(temp, "merged");
        using var console = new StringWriter();

        int exit = WeldEmbedExample.MergeExample.Run(
            Path.Combine(TestPaths.RepoRoot, "examples", "ties.yml"), output,
            Path.Combine(TestPaths.RepoRoot, "tests", "zoo", "eval", "python.txt"), console);

        Assert.True(exit == 0, console.ToString());
        Assert.True(File.Exists(Path.Combine(output, "model.safetensors")));
        Assert.Matches(@"perplexity \d+\.\d{4} over \d+ tokens", console.ToString());
    }

    [Fact]
    public void EmbedExample_ReportsABadRecipeInOneLine()
    {
        string temp = TestPaths.NewTempDir("weld-embed");
        string recipe = Path.Combine(temp, "bad.yml");
        File.WriteAllText(recipe, "models:\n  - model: no-such-model\nmerge_method: linear\n");
        using var console = new StringWriter();

        int exit = WeldEmbedExample.MergeExample.Run(recipe, Path.Combine(temp, "out"), "unused.txt", console);

        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", console.ToString(), StringComparison.Ordinal);
        Assert.Single(console.ToString().TrimEnd().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(temp, "out")));
    }

    [Fact]
    public void TensorExample_MeasuresTaskVectors()
    {
        string models = Path.Combine(TestPaths.RepoRoot, "examples", "models");
        using var same = new StringWriter();
        using var tuned = new StringWriter();

        WeldEmbedExample.TensorExample.PrintTaskVectorNorms(Path.Combine(models, "lm-base"), Path.Combine(models, "lm-base"), same);
        WeldEmbedExample.TensorExample.PrintTaskVectorNorms(Path.Combine(models, "lm-base"), Path.Combine(models, "lm-ft-python"), tuned);

        string[] zero = same.ToString().TrimEnd().Split('\n');
        Assert.Equal(39, zero.Length); // one line per tensor of the example model
        Assert.All(zero, line => Assert.EndsWith("|theta - theta0| = 0", line, StringComparison.Ordinal));
        Assert.Contains(tuned.ToString().Split('\n'), line => line.Contains("mlp.up_proj", StringComparison.Ordinal) && !line.EndsWith("= 0", StringComparison.Ordinal));
    }

    [Fact]
    public void CSharpBlocksOfTheDocs_AreExcerptsOfCompiledExamples()
    {
        string examples = Path.Combine(TestPaths.RepoRoot, "examples");
        string[] sources = Directory.GetFiles(examples, "*.cs", SearchOption.AllDirectories)
            .Select(p => Normalize(File.ReadAllText(p))).ToArray();
        List<DocBlock> blocks = DocBlocks.Pages().SelectMany(DocBlocks.Of)
            .Where(b => b.Language is "csharp" or "cs" or "c#" && b.NotRunReason is null).ToList();
        Assert.NotEmpty(blocks);
        foreach (DocBlock block in blocks)
            Assert.True(sources.Any(s => s.Contains(Normalize(block.Text), StringComparison.Ordinal)),
                $"{block.Where}: this C# block is not an excerpt of a file under examples/ (copy it from there, or mark it <!-- not run in tests: why -->)");
    }

    /// <summary>Compares code ignoring each line's indentation and blank lines (an excerpt may be dedented).</summary>
    private static string Normalize(string code) =>
        string.Join('\n', code.Replace("\r", "", StringComparison.Ordinal).Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0));
}
