using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Execution;

/// <summary>
/// A tensor the method cannot stream, above the memory limit: without a user limit it is merged whole on a raised
/// budget (with the bytes of a plain run), or fails before anything is read when even that is not enough.
/// </summary>
public class WholeTensorFallbackTests
{
    // TSV cannot stream (its SVDs need the whole tensor). Largest zoo tensor: 384 × 128 elements, 2 models + base +
    // output = 786,432 bytes of float32 buffers, plus TSV's float64 factorisations (4,063,232 bytes by its estimate).
    private const string Tsv = """
        models:
          - model: {zoo}/lm-ft-prose
          - model: {zoo}/lm-ft-c
        base_model: {zoo}/lm-base
        merge_method: tsv
        """;

    private const long Buffers = 4L * 384 * 128 * 4;

    private static string Output() => Path.Combine(TestPaths.NewTempDir(), "out");

    [Fact]
    public void A_tensor_above_the_limit_is_merged_whole_on_the_raised_budget_with_the_same_bytes()
    {
        MergeRecipe recipe = RecipeHarness.Recipe(Tsv);
        string plain = Output(), raised = Output();
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = plain, MemoryLimitBytes = 100_000_000 });
        var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = raised, MemoryLimitBytes = 600_000, WholeTensorLimitBytes = 20_000_000 });
        // Above the limit while the large tensors are held, and the pool with TSV's own memory beside it under the raised budget.
        Assert.InRange(summary.PeakBufferBytes, Buffers, 20_000_000 - 4_063_232);
        Assert.True(File.ReadAllBytes(Path.Combine(plain, "model.safetensors")).AsSpan()
            .SequenceEqual(File.ReadAllBytes(Path.Combine(raised, "model.safetensors"))));
    }

    [Fact]
    public void A_tensor_that_needs_more_than_the_raised_budget_fails_before_any_tensor_naming_it_and_the_bytes()
    {
        MergeRecipe recipe = RecipeHarness.Recipe(Tsv);
        string output = Output();
        // Room for the buffers, not for TSV's factorisations beside them.
        var error = Assert.Throws<WeldException>(() =>
            MergeRunner.Run(recipe, new MergeOptions { OutputPath = output, MemoryLimitBytes = 600_000, WholeTensorLimitBytes = 2_000_000 }));
        Assert.Matches(@"^tensor model\.\S+ \(49,152 elements, 3 inputs\): tsv needs the whole tensor in memory, 4,849,664 bytes \(786,432 of float32 buffers \+ 4,063,232 of its own working memory\), above the 2,000,000 bytes", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void A_given_memory_limit_stays_hard()
    {
        var error = Assert.Throws<WeldException>(() =>
            MergeRunner.Run(RecipeHarness.Recipe(Tsv), new MergeOptions { OutputPath = Output(), MemoryLimitBytes = 600_000 }));
        Assert.Contains("needs the whole tensor in memory, 786,432 bytes of float32 buffers, above the memory limit of 600,000 bytes; raise --memory-limit", error.Message);
    }

    [Fact]
    public void The_raised_budget_is_half_the_machine_and_never_below_the_default()
    {
        Assert.Equal(12L << 30, DefaultMemoryLimit.WholeTensorFor(24L << 30));
        Assert.Equal(1L << 30, DefaultMemoryLimit.WholeTensorFor(2L << 30));
        // A tiny machine: the default's 256 MB floor is above half of it.
        Assert.Equal(DefaultMemoryLimit.Floor, DefaultMemoryLimit.WholeTensorFor(300_000_000));
    }
}
