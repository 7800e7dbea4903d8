using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Merging;

/// <summary>Invariants of whole merges on the real zoo models (the methods' own math is checked in Methods/).</summary>
public class RealModelMergeTests
{
    private static void AssertBitsEqual(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(actual[i]),
                $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }

    [Fact]
    public void Linear_of_a_model_with_itself_is_that_model_bit_for_bit()
    {
        string output = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {weight: 0.3}
              - model: {zoo}/lm-ft-c
                parameters: {weight: 0.7}
            merge_method: linear
            """);
        // Weighted sum 0.3x + 0.7x rounds in float32, but bf16 output of it is x again only if exact:
        // compare stored bytes through the reader.
        var expected = RecipeHarness.ReadAll(TestPaths.Model("lm-ft-c"));
        var actual = RecipeHarness.ReadAll(output);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, values) in expected) AssertBitsEqual(values, actual[name], name);
        using var merged = ModelFolder.Open(output);
        Assert.All(merged.TensorNames, n => Assert.Equal(DType.BF16, merged.GetTensor(n).Info.DType));
    }

    [Fact]
    public void Task_arithmetic_with_lambda_zero_is_the_base()
    {
        string output = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-ft-prose
                parameters: {weight: 1.0}
              - model: {zoo}/lm-ft-python
                parameters: {weight: 1.0}
            base_model: {zoo}/lm-base
            merge_method: task_arithmetic
            parameters: {lambda: 0.0}
            """);
        var expected = RecipeHarness.ReadAll(TestPaths.Model("lm-base"));
        foreach (var (name, values) in RecipeHarness.ReadAll(output))
            Assert.Equal(expected[name], values); // value equality: base + (±0) may flip the sign of a zero
    }

    [Fact]
    public void Ties_of_one_model_at_density_one_is_that_model()
    {
        string output = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-ft-markup
                parameters: {weight: 1.0, density: 1.0}
            base_model: {zoo}/lm-base
            merge_method: ties
            """);
        var expected = RecipeHarness.ReadAll(TestPaths.Model("lm-ft-markup"));
        foreach (var (name, values) in RecipeHarness.ReadAll(output)) AssertBitsEqual(expected[name], values, name);
    }

    [Fact]
    public void Dare_ties_gives_the_same_bytes_on_one_and_many_threads_and_depends_on_the_seed()
    {
        const string recipe = """
            models:
              - model: {zoo}/lm-ft-prose
                parameters: {weight: 0.6, density: 0.4}
              - model: {zoo}/lm-ft-c
                parameters: {weight: 0.6, density: 0.4}
            base_model: {zoo}/lm-base
            merge_method: dare_ties
            """;
        byte[] one = RecipeHarness.TensorFileBytes(RecipeHarness.Merge(recipe, threads: 1, seed: 11));
        byte[] many = RecipeHarness.TensorFileBytes(RecipeHarness.Merge(recipe, threads: 4, seed: 11));
        byte[] other = RecipeHarness.TensorFileBytes(RecipeHarness.Merge(recipe, threads: 4, seed: 12));
        Assert.Equal(one, many);
        Assert.NotEqual(one, other);
    }

    [Fact]
    public void Ties_and_breadcrumbs_give_the_same_bytes_on_one_and_many_threads()
    {
        foreach (string method in new[] { "ties", "breadcrumbs_ties", "model_stock" })
        {
            string recipe = $$"""
                models:
                  - model: {zoo}/lm-ft-prose
                    parameters: {weight: 0.5, density: 0.3}
                  - model: {zoo}/lm-ft-python
                    parameters: {weight: 0.7, density: 0.3}
                base_model: {zoo}/lm-base
                merge_method: {{method}}
                """;
            if (method == "model_stock") recipe = recipe.Replace("weight: 0.5, density: 0.3", "").Replace("weight: 0.7, density: 0.3", "");
            Assert.Equal(RecipeHarness.TensorFileBytes(RecipeHarness.Merge(recipe, threads: 1)),
                RecipeHarness.TensorFileBytes(RecipeHarness.Merge(recipe, threads: 2)));
        }
    }

    [Fact]
    public void Uniform_soup_matches_a_float64_average_of_the_stored_weights()
    {
        string output = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-ft-prose
                parameters: {weight: 1}
              - model: {zoo}/lm-ft-c
                parameters: {weight: 1}
              - model: {zoo}/lm-ft-python
                parameters: {weight: 1}
              - model: {zoo}/lm-ft-markup
                parameters: {weight: 1}
            merge_method: linear
            out_dtype: float32
            """);
        var inputs = new[] { "lm-ft-prose", "lm-ft-c", "lm-ft-python", "lm-ft-markup" }.Select(m => RecipeHarness.ReadAll(TestPaths.Model(m))).ToArray();
        foreach (var (name, values) in RecipeHarness.ReadAll(output))
        {
            for (int i = 0; i < values.Length; i++)
            {
                double expected = inputs.Sum(m => (double)m[name][i]) / 4;
                Assert.True(Math.Abs(values[i] - expected) <= 4e-7 * Math.Max(Math.Abs(expected), 1e-3), $"{name}[{i}]: {values[i]:R} vs {expected:R}");
            }
        }
    }

    [Fact]
    public void The_f16_sharded_copy_mixes_with_bf16_models()
    {
        // lm-ft-c-sharded holds lm-ft-c's values in F16 over two shards; averaging it with lm-ft-c gives lm-ft-c
        // except where F16 lost bits (68 elements, all below F16's normal range).
        string output = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-ft-c-sharded
                parameters: {weight: 1}
              - model: {zoo}/lm-ft-c
                parameters: {weight: 1}
            merge_method: linear
            dtype: float32
            """);
        var f16 = RecipeHarness.ReadAll(TestPaths.Model("lm-ft-c-sharded"));
        var bf16 = RecipeHarness.ReadAll(TestPaths.Model("lm-ft-c"));
        int differing = 0;
        foreach (var (name, values) in RecipeHarness.ReadAll(output))
            for (int i = 0; i < values.Length; i++)
            {
                Assert.Equal((f16[name][i] + bf16[name][i]) / 2, values[i]);
                if (values[i] != bf16[name][i]) differing++;
            }
        Assert.Equal(68, differing);
        using var merged = ModelFolder.Open(output);
        Assert.Equal(DType.F32, merged.GetTensor("lm_head.weight").Info.DType);
        Assert.Equal("float32", merged.Config!.TorchDType);
    }

    [Fact]
    public void Sharded_output_holds_the_same_values_as_a_single_file()
    {
        const string recipe = """
            models:
              - model: {zoo}/lm-ft-prose
                parameters: {weight: 0.5, density: 0.5}
              - model: {zoo}/lm-ft-c
                parameters: {weight: 0.5, density: 0.5}
            base_model: {zoo}/lm-base
            merge_method: ties
            """;
        string single = RecipeHarness.Merge(recipe);
        string sharded = RecipeHarness.Merge(recipe, shardBytes: 300_000);
        Assert.True(File.Exists(Path.Combine(sharded, "model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(sharded, "model-*-of-*.safetensors").Length > 3);
        var a = RecipeHarness.ReadAll(single);
        var b = RecipeHarness.ReadAll(sharded);
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, values) in a) AssertBitsEqual(values, b[name], name);
    }
}
