using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Planning;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>
/// <c>merge --dry-run</c> lists the tensors that take the whole-tensor fallback and what they need (the plan report
/// with small budgets, so the zoo's 384 × 128 tensors stand for a 1B model's embedding).
/// </summary>
public sealed class WholeTensorDryRunTests
{
    // examples/tsv.yml: 3 fine-tunes + base; a 384 × 128 tensor holds 5 float32 rows = 983,040 bytes of buffers, and
    // TSV's float64 factorisations take 5,621,760 bytes by its estimate (k = 42 per task).
    private const string Need = "6,604,800 bytes (983,040 of float32 buffers + 5,621,760 of the method's own working memory)";

    private static string[] Report(long memoryLimit, long? wholeTensorLimit)
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipePath = Recipes.WriteExample("tsv.yml", temp);
        MergeRecipe recipe = RecipeParser.Load(recipePath);
        using var models = new ModelSet(temp, recipe.SourceName);
        MergePlan plan = MergeRunner.Plan(recipe, models);
        using var writer = new StringWriter();
        PlanReport.Write(plan, models, 5_000_000_000, memoryLimit, writer, wholeTensorLimit: wholeTensorLimit);
        return writer.ToString().ReplaceLineEndings("\n").Split('\n');
    }

    [Fact]
    public void Without_a_limit_each_tensor_above_the_budget_is_listed_with_what_it_needs()
    {
        string[] lines = Report(900_000, 20_000_000);
        string[] whole = lines.Where(l => l.StartsWith("  whole tensor ", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(whole);
        Assert.All(whole, l => Assert.EndsWith(": " + Need, l, StringComparison.Ordinal));
        Assert.Contains(lines, l => l == $"memory:   {whole.Length} tensor(s) tsv cannot stream are above the budget: each is merged whole, the budget raised for it up to 20,000,000 bytes (half the machine's memory)");
        Assert.DoesNotContain(lines, l => l.StartsWith("warning:", StringComparison.Ordinal));
    }

    [Fact]
    public void A_tensor_that_needs_more_than_the_machine_can_give_is_marked_as_failing()
    {
        string[] whole = Report(900_000, 5_000_000).Where(l => l.StartsWith("  whole tensor ", StringComparison.Ordinal)).ToArray();
        Assert.NotEmpty(whole);
        Assert.All(whole, l => Assert.EndsWith(Need + " - more than this machine can safely give: the merge will fail", l, StringComparison.Ordinal));
    }

    [Fact]
    public void With_a_given_limit_the_tensors_are_listed_under_the_warning()
    {
        string[] lines = Report(900_000, null);
        Assert.Contains(lines, l => l == "warning:  tsv needs whole tensors in memory: raise --memory-limit to at least 983,040");
        Assert.Contains(lines, l => l.StartsWith("  whole tensor ", StringComparison.Ordinal)
            && l.EndsWith(": 983,040 bytes of float32 buffers (above --memory-limit: the merge will fail)", StringComparison.Ordinal));
    }
}
