using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>LiNeS (<c>lines: {alpha, beta}</c>): depth-scaled task vector after any method with a base model.</summary>
public class LinesTests
{
    private const string TaskArithmetic = """
        models:
          - model: {zoo}/lm-ft-c
            parameters: {weight: 0.7}
          - model: {zoo}/lm-ft-python
            parameters: {weight: 0.6}
        merge_method: task_arithmetic
        base_model: {zoo}/lm-base
        out_dtype: float32
        """;

    [Fact]
    public void Zoo_merge_scales_each_layers_task_vector_by_alpha_plus_beta_times_depth()
    {
        const double alpha = 0.3, beta = 0.9;
        string plain = RecipeHarness.Merge(TaskArithmetic);
        string scaled = RecipeHarness.Merge(TaskArithmetic + $"\nlines: {{alpha: {alpha}, beta: {beta}}}\n");
        var baseline = RecipeHarness.ReadAll(TestPaths.Model("lm-base"));
        var merged = RecipeHarness.ReadAll(plain);
        var actual = RecipeHarness.ReadAll(scaled);
        Assert.Equal(merged.Keys.Order(), actual.Keys.Order());
        int layersSeen = 0;
        foreach (var (name, values) in merged)
        {
            // The zoo models have 4 layers: s = α + β·(l − 1)/3 for layer l = index + 1; α outside the layers.
            int? index = name.StartsWith("model.layers.", StringComparison.Ordinal)
                ? int.Parse(name.Split('.')[2], System.Globalization.CultureInfo.InvariantCulture) : null;
            float s = (float)(index is int i ? alpha + beta * ((double)i / 3) : alpha);
            if (index == 3) layersSeen++;
            float[] b = baseline[name];
            var expected = new float[values.Length];
            for (int j = 0; j < expected.Length; j++) expected[j] = b[j] + s * (values[j] - b[j]);
            MethodHarness.AssertBits(expected, actual[name], name);
        }
        Assert.Equal(9, layersSeen); // 4 projections + 3 MLP + 2 norms of the last layer were checked
    }

    [Fact]
    public void Alpha_one_beta_zero_is_the_plain_merge_bit_for_bit()
    {
        string recipe = TaskArithmetic.Replace("out_dtype: float32", "", StringComparison.Ordinal);
        string plain = RecipeHarness.Merge(recipe);
        string scaled = RecipeHarness.Merge(recipe + "\nlines: {alpha: 1, beta: 0}\n");
        Assert.Equal(RecipeHarness.TensorFileBytes(plain), RecipeHarness.TensorFileBytes(scaled));
    }

    [Theory]
    [InlineData("linear", "base_model: {zoo}/lm-base", "has no base model")]
    [InlineData("nuslerp", "", "is given no base_model")]
    public void Lines_without_a_base_model_is_refused(string method, string baseLine, string expected)
    {
        MergeRecipe recipe = RecipeHarness.Recipe($$"""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {weight: 0.5}
              - model: {zoo}/lm-ft-python
                parameters: {weight: 0.5}
            merge_method: {{method}}
            {{baseLine}}
            lines: {alpha: 0.5, beta: 0.5}
            """);
        using var models = new ModelSet(null);
        var e = Assert.Throws<RecipeException>(() => MergeRunner.Plan(recipe, models));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("lines", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lines: {beta: 1}", "missing required key 'alpha'")]
    [InlineData("lines: {alpha: 1, gamma: 1}", "unknown lines key 'gamma'")]
    [InlineData("lines: 0.5", "'lines' must be a mapping")]
    public void Malformed_lines_name_the_recipe_line(string lines, string expected)
    {
        var e = Assert.Throws<RecipeException>(() => RecipeHarness.Recipe(TaskArithmetic + "\n" + lines + "\n"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("test.yml:", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("magmax")] // elementwise: chunked in one pass
    [InlineData("ties")]   // streaming: statistics passes, then the scaled apply pass
    public void Chunked_merge_with_lines_has_the_bytes_of_the_whole_tensor_merge(string method)
    {
        const int rows = 1100, columns = 2000;
        string folder = TestPaths.NewTempDir();
        var random = new Random(5);
        float[] baseline = MethodHarness.RandomTensor(random, rows * columns, 0.05f, bf16: false);
        string Write(string name, float[] values)
        {
            string path = Path.Combine(folder, name);
            Directory.CreateDirectory(path);
            var header = new TensorHeader("model.layers.0.big.weight", DType.F32, [rows, columns]);
            using var writer = new SafeTensorsWriter(Path.Combine(path, "model.safetensors"), [header], null);
            writer.WriteFloat32(values);
            writer.Complete();
            return path;
        }
        string basePath = Write("base", baseline);
        var entries = new List<string>();
        for (int k = 0; k < 2; k++)
        {
            float[] tuned = (float[])baseline.Clone();
            for (int i = 0; i < tuned.Length; i++) tuned[i] += (float)(random.NextDouble() - 0.5) * 0.01f;
            entries.Add($"  - model: {Write("m" + k, tuned)}\n    parameters: {(method == "ties" ? "{weight: 0.5, density: 0.5}" : "{}")}");
        }
        MergeRecipe recipe = RecipeParser.Parse($"""
            models:
            {string.Join("\n", entries)}
            merge_method: {method}
            base_model: {basePath}
            parameters: {"{"}lambda: 0.8{"}"}
            lines: {"{"}alpha: 0.25, beta: 0.5{"}"}
            dtype: float32
            """, method + ".yml");
        string whole = Path.Combine(TestPaths.NewTempDir(), "out"), chunked = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole });
        var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = chunked, MemoryLimitBytes = 24_000_000 });
        Assert.True(summary.PeakBufferBytes <= 24_000_000);
        byte[] wholeBytes = File.ReadAllBytes(Path.Combine(whole, "model.safetensors"));
        Assert.True(wholeBytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(chunked, "model.safetensors"))), method);
        // And the scale was applied: a single layer (L = 1) sits at position 1, s = α + β = 0.75.
        float[] lined = RecipeHarness.Read(whole, "model.layers.0.big.weight");
        Assert.NotEqual(baseline[0], lined[0]);
    }

    [Fact]
    public void Slices_count_output_layers_for_the_depth()
    {
        // Two slices of two layers each: output layers 0..3, so L = 4 across the slices.
        MergeRecipe recipe = RecipeHarness.Recipe("""
            slices:
              - sources:
                  - model: {zoo}/lm-ft-c
                    layer_range: [0, 2]
                  - model: {zoo}/lm-base
                    layer_range: [0, 2]
              - sources:
                  - model: {zoo}/lm-ft-python
                    layer_range: [2, 4]
                  - model: {zoo}/lm-base
                    layer_range: [2, 4]
            merge_method: task_arithmetic
            base_model: {zoo}/lm-base
            parameters: {weight: 1}
            lines: {alpha: 0.2, beta: 0.6}
            """);
        using var models = new ModelSet(null);
        var plan = MergeRunner.Plan(recipe, models);
        foreach (var task in plan.Tensors)
        {
            int? layer = LayerNames.LayerIndex(task.Header.Name);
            double expected = layer is int l ? 0.2 + 0.6 * ((double)l / 3) : 0.2;
            Assert.Equal(expected, task.LinesScale!.Value, 12);
        }
        Assert.Contains(plan.Tensors, t => t.Header.Name == "model.layers.3.mlp.up_proj.weight" && Math.Abs(t.LinesScale!.Value - 0.8) < 1e-12);
    }
}
