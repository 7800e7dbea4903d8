using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>fisher: Fisher-weighted averaging with per-model diagonal Fisher files written here.</summary>
public class FisherTests
{
    /// <summary>Writes one F32 tensor per entry, under <paramref name="suffix"/>-extended names, into a single file.</summary>
    private static string WriteTensors(string path, IReadOnlyDictionary<string, (long[] Shape, float[] Values)> tensors, string suffix = "")
    {
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToArray();
        var headers = names.Select(n => new TensorHeader(n + suffix, DType.F32, tensors[n].Shape)).ToArray();
        using (var writer = new SafeTensorsWriter(path, headers, null))
        {
            foreach (string n in names) writer.WriteFloat32(tensors[n].Values);
            writer.Complete();
        }
        return path;
    }

    /// <summary>Random positive Fisher values for every tensor of a zoo model (some exactly zero).</summary>
    private static Dictionary<string, (long[] Shape, float[] Values)> RandomFisher(string model, int seed)
    {
        var random = new Random(seed);
        var result = new Dictionary<string, (long[], float[])>();
        using var folder = ModelFolder.Open(TestPaths.Model(model));
        foreach (string name in folder.TensorNames)
        {
            ModelTensor t = folder.GetTensor(name);
            var values = new float[t.Info.ElementCount];
            for (int i = 0; i < values.Length; i++) values[i] = random.Next(10) == 0 ? 0f : (float)random.NextDouble() * 1e-3f;
            result[name] = (t.Info.Shape, values);
        }
        return result;
    }

    private static float[] Reference(float[][] models, float[][] fisher, float[] weights, float epsilon)
    {
        var result = new float[models[0].Length];
        for (int i = 0; i < result.Length; i++)
        {
            float num = 0f, den = 0f;
            for (int k = 0; k < models.Length; k++)
            {
                float f = weights[k] * fisher[k][i];
                num += f * models[k][i];
                den += f;
            }
            result[i] = num / Math.Max(den, epsilon);
        }
        return result;
    }

    [Fact]
    public void Zoo_merge_is_the_fisher_weighted_mean_and_key_suffixes_find_optimizer_moments()
    {
        string dir = TestPaths.NewTempDir();
        var fc = RandomFisher("lm-ft-c", 1);
        var fp = RandomFisher("lm-ft-python", 2);
        // Both elements' Fisher zero somewhere: the output there is 0 / max(0, ε) = 0.
        fc["model.norm.weight"].Values[5] = 0f;
        fp["model.norm.weight"].Values[5] = 0f;
        string c = WriteTensors(Path.Combine(dir, "c.safetensors"), fc);
        string p = WriteTensors(Path.Combine(dir, "p.safetensors"), fp);
        string pMoments = WriteTensors(Path.Combine(dir, "p-adam.safetensors"), fp, ".exp_avg_sq");
        string cMoments = WriteTensors(Path.Combine(dir, "c-adam.safetensors"), fc, ".exp_avg_sq");
        string Recipe(string cf, string pf, string extra) => $$"""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {fisher: {{cf}}}
              - model: {zoo}/lm-ft-python
                parameters: {fisher: {{pf}}, weight: 0.5}
            merge_method: fisher
            parameters: {epsilon: 1e-6{{extra}}}
            out_dtype: float32
            """;
        string merged = RecipeHarness.Merge(Recipe(c, p, ""));
        string fromMoments = RecipeHarness.Merge(Recipe(cMoments, pMoments, ", fisher_key_suffix: .exp_avg_sq"));
        var c32 = RecipeHarness.ReadAll(TestPaths.Model("lm-ft-c"));
        var p32 = RecipeHarness.ReadAll(TestPaths.Model("lm-ft-python"));
        var actual = RecipeHarness.ReadAll(merged);
        Assert.Equal(c32.Keys.Order(), actual.Keys.Order());
        foreach (string name in c32.Keys)
        {
            float[] expected = Reference([c32[name], p32[name]], [fc[name].Values, fp[name].Values], [1f, 0.5f], 1e-6f);
            MethodHarness.AssertBits(expected, actual[name], name);
        }
        Assert.Equal(0f, actual["model.norm.weight"][5]);
        Assert.Equal(RecipeHarness.TensorFileBytes(merged), RecipeHarness.TensorFileBytes(fromMoments));
    }

    [Fact]
    public void A_fisher_file_without_the_tensor_is_refused_naming_file_and_tensor()
    {
        string dir = TestPaths.NewTempDir();
        var fc = RandomFisher("lm-ft-c", 3);
        fc.Remove("model.layers.1.mlp.up_proj.weight");
        string c = WriteTensors(Path.Combine(dir, "c.safetensors"), fc);
        MergeRecipe recipe = RecipeHarness.Recipe($$"""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {fisher: {{c}}}
            merge_method: fisher
            """);
        using var models = new ModelSet(null);
        var e = Assert.Throws<RecipeException>(() => MergeRunner.Plan(recipe, models));
        Assert.Contains("c.safetensors has no tensor model.layers.1.mlp.up_proj.weight", e.Message, StringComparison.Ordinal);
        Assert.StartsWith("test.yml:3:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_model_without_a_fisher_file_is_refused()
    {
        MergeRecipe recipe = RecipeHarness.Recipe("""
            models:
              - model: {zoo}/lm-ft-c
            merge_method: fisher
            """);
        using var models = new ModelSet(null);
        var e = Assert.Throws<RecipeException>(() => MergeRunner.Plan(recipe, models));
        Assert.Contains("needs parameter fisher", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Chunked_fisher_merge_has_the_bytes_of_the_whole_tensor_merge()
    {
        const int rows = 1100, columns = 2000;
        string dir = TestPaths.NewTempDir();
        var random = new Random(21);
        var entries = new List<string>();
        var models = new float[2][];
        var fisher = new float[2][];
        for (int k = 0; k < 2; k++)
        {
            models[k] = MethodHarness.RandomTensor(random, rows * columns, 0.05f, bf16: false);
            fisher[k] = MethodHarness.RandomTensor(random, rows * columns, 1f, bf16: false).Select(MathF.Abs).ToArray();
            string folder = Path.Combine(dir, "m" + k);
            Directory.CreateDirectory(folder);
            WriteTensors(Path.Combine(folder, "model.safetensors"), new Dictionary<string, (long[], float[])> { ["big.weight"] = ([rows, columns], models[k]) });
            string f = WriteTensors(Path.Combine(dir, $"f{k}.safetensors"), new Dictionary<string, (long[], float[])> { ["big.weight"] = ([rows, columns], fisher[k]) });
            entries.Add($"  - model: {folder}\n    parameters: {{fisher: {f}}}");
        }
        MergeRecipe recipe = RecipeParser.Parse($"""
            models:
            {string.Join("\n", entries)}
            merge_method: fisher
            dtype: float32
            """, "fisher.yml");
        string whole = Path.Combine(TestPaths.NewTempDir(), "out"), chunked = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole });
        var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = chunked, MemoryLimitBytes = 24_000_000 });
        Assert.True(5L * rows * columns * sizeof(float) > 24_000_000); // 2 models + 2 Fisher rows + output: it was cut
        Assert.True(summary.PeakBufferBytes <= 24_000_000);
        Assert.True(File.ReadAllBytes(Path.Combine(whole, "model.safetensors")).AsSpan()
            .SequenceEqual(File.ReadAllBytes(Path.Combine(chunked, "model.safetensors"))));
        MethodHarness.AssertBits(Reference(models, fisher, [1f, 1f], 1e-8f), RecipeHarness.Read(chunked, "big.weight"), "chunked fisher");
    }
}
