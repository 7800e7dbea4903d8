using Weld.Engine.Alignment;
using Weld.Engine.Config;
using Weld.Engine.Evaluation;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Weld.Engine.Tests.Alignment;

/// <summary>The recipe option <c>align_to</c>: models are permuted to match it before merging.</summary>
public class RecipeAlignmentTests(ITestOutputHelper output)
{
    private static string Recipe(string? alignTo) =>
        $$"""
        merge_method: linear
        models:
          - model: {{TestPaths.Model("mlp-digits-a")}}
            parameters: {weight: 0.5}
          - model: {{TestPaths.Model("mlp-digits-b")}}
            parameters: {weight: 0.5}
        dtype: float32
        {{(alignTo is null ? "" : "align_to: " + alignTo)}}
        """;

    [Fact]
    public void Parser_reads_align_to_and_leaves_it_null_otherwise()
    {
        MergeRecipe recipe = RecipeParser.Parse(Recipe(TestPaths.Model("mlp-digits-a")), "r.yml");
        Assert.Equal(TestPaths.Model("mlp-digits-a"), recipe.AlignTo!.Model.Path);
        Assert.Equal(8, recipe.AlignTo.Line); // the eighth line of the recipe
        Assert.Null(RecipeParser.Parse(Recipe(null), "r.yml").AlignTo);
    }

    [Fact]
    public void Linear_merge_with_align_to_averages_a_with_aligned_b_and_beats_the_plain_average()
    {
        string dir = TestPaths.NewTempDir();
        string alignedMerge = Path.Combine(dir, "aligned"), plainMerge = Path.Combine(dir, "plain");
        var notes = new List<string>();
        MergeRunner.Run(RecipeParser.Parse(Recipe(TestPaths.Model("mlp-digits-a")), "r.yml"), new MergeOptions { OutputPath = alignedMerge }, log: notes.Add);
        MergeRunner.Run(RecipeParser.Parse(Recipe(null), "r.yml"), new MergeOptions { OutputPath = plainMerge });
        Assert.Contains(notes, n => n.StartsWith("aligned ", StringComparison.Ordinal));

        // Expected: the element-wise mean of A and B permuted by weight matching run here (seed 0).
        using var a = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        using var b = ModelFolder.Open(TestPaths.Model("mlp-digits-b"));
        PermutationSpec spec = PermutationSpec.ForMlp(a.Config!);
        TensorSet setA = TensorSet.Load(a), setB = TensorSet.Load(b);
        TensorSet alignedB = WeightMatching.Apply(spec, setB, WeightMatching.Run(spec, setA, setB).Permutations);
        using var merged = ModelFolder.Open(alignedMerge);
        TensorSet result = TensorSet.Load(merged);
        foreach (string name in setA.Names)
        {
            float[] x = setA.Get(name), y = alignedB.Get(name), m = result.Get(name);
            for (int i = 0; i < m.Length; i++)
            {
                double expected = 0.5 * x[i] + 0.5 * y[i];
                Assert.True(Math.Abs(m[i] - expected) <= 1e-6 * (1 + Math.Abs(expected)), $"{name}[{i}]: {m[i]} vs {expected}");
            }
        }

        ClassificationData data = ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"));
        using var plain = ModelFolder.Open(plainMerge);
        ClassificationResult alignedResult = MlpClassifier.Load(merged).Evaluate(data), plainResult = MlpClassifier.Load(plain).Evaluate(data);
        output.WriteLine($"plain average: loss {plainResult.MeanLoss:F4}, accuracy {plainResult.Accuracy:F4}; with align_to: loss {alignedResult.MeanLoss:F4}, accuracy {alignedResult.Accuracy:F4}");
        Assert.True(alignedResult.MeanLoss < plainResult.MeanLoss);
    }

    [Fact]
    public void Align_to_with_parts_is_refused()
    {
        string outPath = Path.Combine(TestPaths.NewTempDir(), "out");
        var e = Assert.Throws<RecipeException>(() => MergeRunner.Run(RecipeParser.Parse(Recipe(TestPaths.Model("mlp-digits-a")), "r.yml"),
            new MergeOptions { OutputPath = outPath, Part = new PartSelection(1, 2) }));
        Assert.Contains("align_to", e.Message);
    }
}
