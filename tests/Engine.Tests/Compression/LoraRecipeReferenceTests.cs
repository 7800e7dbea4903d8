using Weld.Engine.Compression;
using Weld.Engine.Models;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>Recipe references of the form <c>model+lora</c> merge the model with the adapter folded in.</summary>
public class LoraRecipeReferenceTests
{
    [Fact]
    public void Linear_merge_of_one_model_plus_lora_equals_apply_lora()
    {
        string merged = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-base+{zoo}/lm-lora-python
                parameters: {weight: 1}
            merge_method: linear
            dtype: float32
            out_dtype: bfloat16
            """);
        string applied = Path.Combine(TestPaths.NewTempDir(), "applied");
        LoraApplier.Apply(TestPaths.Model("lm-base"), TestPaths.Model("lm-lora-python"), applied);

        using var expected = ModelFolder.Open(applied);
        using var actual = ModelFolder.Open(merged);
        Assert.Equal(expected.TensorNames.Order(), actual.TensorNames.Order());
        foreach (string name in expected.TensorNames)
            Assert.True(RecipeHarness.Read(applied, name).AsSpan().SequenceEqual(RecipeHarness.Read(merged, name)), name);
        // The adapter really changed the targeted weights.
        Assert.False(RecipeHarness.Read(TestPaths.Model("lm-base"), "model.layers.0.self_attn.q_proj.weight").AsSpan()
            .SequenceEqual(RecipeHarness.Read(merged, "model.layers.0.self_attn.q_proj.weight")));
    }
}
