using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.Tests.Merging;
using Weld.Kernels;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>The examples/ recipes of the new methods run end to end on the zoo models; recipes reach the planner.</summary>
public class NewMethodRecipeTests
{
    private const string Probe = "model.layers.2.mlp.up_proj.weight";

    public static TheoryData<string> Examples => new()
    {
        "della", "della-linear", "sce", "nuslerp", "multislerp", "karcher", "nearswap", "arcee-fusion", "ram",
        "ramplus-tl", "magmax", "breadcrumbs-paper", "consensus", "divergence-weights", "lines-task-arithmetic",
    };

    private static MergeRecipe Example(string name)
    {
        string path = Path.Combine(TestPaths.RepoRoot, "examples", name + ".yml");
        string text = File.ReadAllText(path).Replace(": models/", ": " + Path.Combine(TestPaths.RepoRoot, "examples", "models") + "/", StringComparison.Ordinal);
        return RecipeParser.Parse(text, path);
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void Example_recipe_merges_every_tensor_to_finite_values(string name)
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(Example(name), new MergeOptions { OutputPath = output, Seed = 3 });
        var merged = RecipeHarness.ReadAll(output);
        var reference = RecipeHarness.ReadAll(TestPaths.Model("lm-base"));
        Assert.Equal(reference.Keys.Order(), merged.Keys.Order());
        foreach (var (tensor, values) in merged)
        {
            Assert.Equal(reference[tensor].Length, values.Length);
            Assert.All(values, v => Assert.True(float.IsFinite(v), $"{name}: {tensor} has {v}"));
        }
        using var folder = ModelFolder.Open(output);
        Assert.Equal(Weld.Engine.SafeTensors.DType.BF16, folder.GetTensor(Probe).Info.DType);
    }

    [Fact]
    public void Magmax_example_equals_the_reference_rounded_to_bf16()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(Example("magmax"), new MergeOptions { OutputPath = output });
        string models = Path.Combine(TestPaths.RepoRoot, "examples", "models");
        float[] baseline = RecipeHarness.Read(Path.Combine(models, "lm-base"), Probe);
        string[] fineTunes = ["lm-ft-prose", "lm-ft-c", "lm-ft-python", "lm-ft-markup"];
        float[][] tensors = fineTunes.Select(m => RecipeHarness.Read(Path.Combine(models, m), Probe)).ToArray();
        float[] expected = MergeKitReference.MagMax(baseline, tensors, 0.5f)
            .Select(x => FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(x))).ToArray();
        MethodHarness.AssertBits(expected, RecipeHarness.Read(output, Probe), "magmax example");
    }

    [Theory]
    [InlineData("magmax")]
    [InlineData("breadcrumbs_paper")]
    [InlineData("consensus")]
    [InlineData("divergence_weights")]
    public void Weld_method_names_parse_and_plan(string method)
    {
        string zoo = TestPaths.SharedModels;
        // Only breadcrumbs_paper reads a per-model parameter (beta, required); the others take none per model.
        string parameters = method == "breadcrumbs_paper" ? "{beta: 0.5}" : "{}";
        MergeRecipe recipe = RecipeParser.Parse($"""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {parameters}
              - model: {zoo}/lm-ft-python
                parameters: {parameters}
            merge_method: {method}
            base_model: {zoo}/lm-base
            """, "weld.yml");
        using var models = new ModelSet(null);
        MergePlan plan = MergeRunner.Plan(recipe, models);
        Assert.Equal(method, plan.Method.Name);
        Assert.All(plan.Tensors, t => Assert.Equal(2, t.Inputs.Count));
        Assert.All(plan.Tensors, t => Assert.NotNull(t.Base));
    }

    [Fact]
    public void Nuslerp_keeps_a_given_base_apart_and_refuses_a_base_among_the_two_models()
    {
        string zoo = TestPaths.SharedModels;
        using (var models = new ModelSet(null))
        {
            MergePlan plan = MergeRunner.Plan(RecipeParser.Parse($"""
                models:
                  - model: {zoo}/lm-ft-c
                    parameters: {"{"}weight: 0.5{"}"}
                  - model: {zoo}/lm-ft-python
                    parameters: {"{"}weight: 0.5{"}"}
                merge_method: nuslerp
                base_model: {zoo}/lm-base
                """, "nuslerp.yml"), models);
            Assert.All(plan.Tensors, t => Assert.Equal(2, t.Inputs.Count));
            Assert.All(plan.Tensors, t => Assert.NotNull(t.Base));
        }
        using (var models = new ModelSet(null))
        {
            var error = Assert.Throws<RecipeException>(() => MergeRunner.Plan(RecipeParser.Parse($"""
                models:
                  - model: {zoo}/lm-ft-c
                    parameters: {"{"}weight: 0.5{"}"}
                  - model: {zoo}/lm-base
                    parameters: {"{"}weight: 0.5{"}"}
                merge_method: nuslerp
                base_model: {zoo}/lm-base
                """, "nuslerp.yml"), models));
            Assert.Contains("nuslerp", error.Message);
        }
        using (var models = new ModelSet(null))
        {
            MergePlan plan = MergeRunner.Plan(RecipeParser.Parse($"""
                models:
                  - model: {zoo}/lm-ft-c
                    parameters: {"{"}weight: 0.5{"}"}
                  - model: {zoo}/lm-ft-python
                    parameters: {"{"}weight: 0.5{"}"}
                merge_method: nuslerp
                """, "nuslerp.yml"), models);
            Assert.All(plan.Tensors, t => Assert.Null(t.Base));
        }
    }

    [Fact]
    public void Nearswap_without_t_is_refused_at_planning()
    {
        string zoo = TestPaths.SharedModels;
        using var models = new ModelSet(null);
        var error = Assert.Throws<RecipeException>(() => MergeRunner.Plan(RecipeParser.Parse($"""
            models:
              - model: {zoo}/lm-ft-c
            merge_method: nearswap
            base_model: {zoo}/lm-base
            """, "nearswap.yml"), models));
        Assert.Contains("parameter t", error.Message);
    }
}
