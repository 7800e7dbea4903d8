using Weld.Engine.Config;
using Xunit;

namespace Weld.Engine.Tests.Config;

public sealed class RecipeParametersTests
{
    private const string Tensor = "model.layers.1.mlp.down_proj.weight";

    private const string Layered = """
        merge_method: ties
        base_model: base
        slices:
          - sources:
              - model: a
                layer_range: [0, 4]
                parameters:
                  weight: 0.1
                  density:
                    - filter: self_attn
                      value: 0.9
              - model: a
                layer_range: [4, 8]
                parameters:
                  density: 0.8
                  epsilon: 0.01
              - model: b
                layer_range: [0, 4]
            parameters:
              weight: 0.2
              density: 0.7
          - sources:
              - model: a
                layer_range: [8, 12]
              - model: b
                layer_range: [4, 8]
            base_model: other-base
        parameters:
          weight: 0.3
          density: 0.6
          lambda: [0, 1]
          normalize: true
          label: hello
        """;

    private static MergeRecipe Recipe => RecipeParser.Parse(Layered, "layered.yml");

    private static double? Resolve(MergeRecipe recipe, string name, int? slice, string? model, string tensor = Tensor, double t = 0) =>
        RecipeParameters.ResolveNumber(recipe, name, slice, model is null ? null : ModelReference.Parse(model), tensor, t);

    [Fact]
    public void SourceBeatsSliceBeatsGlobal()
    {
        MergeRecipe recipe = Recipe;

        Assert.Equal(0.1, Resolve(recipe, "weight", 0, "a"));   // source
        Assert.Equal(0.2, Resolve(recipe, "weight", 0, "b"));   // b's source sets nothing: slice
        Assert.Equal(0.3, Resolve(recipe, "weight", 1, "a"));   // slice 1 sets nothing: global
        Assert.Equal(0.2, Resolve(recipe, "weight", 0, null));  // no model: slice, then global
        Assert.Equal(0.3, Resolve(recipe, "weight", null, "a")); // no slice: global only
        Assert.Null(Resolve(recipe, "gamma", 0, "a"));
    }

    [Fact]
    public void SameModelTwice_FirstSourceThatGivesAValueWins()
    {
        MergeRecipe recipe = Recipe;

        // First "a" source has density only for self_attn: for an mlp tensor it gives no value, so the second
        // "a" source (0.8) answers, before the slice (0.7).
        Assert.Equal(0.8, Resolve(recipe, "density", 0, "a"));
        Assert.Equal(0.9, Resolve(recipe, "density", 0, "a", "model.layers.1.self_attn.o_proj.weight"));
        // Only the second "a" source sets epsilon.
        Assert.Equal(0.01, Resolve(recipe, "epsilon", 0, "a"));
    }

    [Fact]
    public void GlobalGradientIsEvaluatedAtT()
    {
        MergeRecipe recipe = Recipe;
        Assert.Equal(0.0, Resolve(recipe, "lambda", 1, "b", t: LayerPosition.PreLayer));
        Assert.Equal(2.0 / 3.0, Resolve(recipe, "lambda", 1, "b", t: LayerPosition.InSlice(2, 4))!.Value, 15);
    }

    [Fact]
    public void ModelsForm_PerModelParametersThenGlobal()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.Ties, "ties.yml");
        const string orca = "psmathur/orca_mini_v3_13b";
        const string wizard = "WizardLM/WizardMath-13B-V1.0";

        Assert.Equal(1.0, Resolve(recipe, "density", 0, orca, t: 0));
        Assert.Equal(0.7, Resolve(recipe, "density", 0, orca, t: 0.5));
        Assert.Equal(0.5, Resolve(recipe, "weight", 0, wizard, "model.layers.0.mlp.up_proj.weight"));
        Assert.Equal(0.0, Resolve(recipe, "weight", 0, wizard, "model.layers.0.self_attn.q_proj.weight"));
        Assert.True(RecipeParameters.ResolveFlag(recipe, "normalize", 0, ModelReference.Parse(orca), Tensor, 0));
        // The base model is not listed: it has no per-model parameters, so only globals apply.
        Assert.Null(Resolve(recipe, "weight", 0, "TheBloke/Llama-2-13B-fp16"));
        Assert.Equal(1.0, Resolve(recipe, "int8_mask", 0, "TheBloke/Llama-2-13B-fp16"));
    }

    [Fact]
    public void ConditionalWithoutMatch_FallsThroughToNextLevel()
    {
        const string yaml = """
            merge_method: linear
            models:
              - model: a
                parameters:
                  weight:
                    - filter: mlp
                      value: 2
            parameters:
              weight: 5
            """;
        MergeRecipe recipe = RecipeParser.Parse(yaml, "c.yml");

        Assert.Equal(2, Resolve(recipe, "weight", 0, "a", "model.layers.0.mlp.up_proj.weight"));
        Assert.Equal(5, Resolve(recipe, "weight", 0, "a", "model.layers.0.self_attn.q_proj.weight"));
    }

    [Fact]
    public void TypedConvenience_CoercesBooleansAndRejectsStringsWithLine()
    {
        MergeRecipe recipe = Recipe;

        Assert.Equal(1.0, Resolve(recipe, "normalize", 0, "a"));
        Assert.True(RecipeParameters.ResolveFlag(recipe, "weight", 0, null, Tensor, 0));
        var error = Assert.Throws<RecipeException>(() => Resolve(recipe, "label", 0, "a"));
        Assert.Equal($"layered.yml:33: parameter 'label' must be a number (tensor {Tensor}), but is the string 'hello'", error.Message);
        ParameterScalar? raw = RecipeParameters.Resolve(recipe, "label", 0, null, Tensor, 0);
        Assert.Equal("hello", raw!.Value.Text);
    }

    [Fact]
    public void BaseModelAndSourcesPerSlice()
    {
        MergeRecipe recipe = Recipe;

        Assert.Equal("base", RecipeParameters.BaseModelFor(recipe, 0)!.Raw);
        Assert.Equal("other-base", RecipeParameters.BaseModelFor(recipe, 1)!.Raw);
        Assert.Equal(["a", "a", "b"], RecipeParameters.SourceModels(recipe, 0).Select(m => m.Raw));
        Assert.Throws<ArgumentOutOfRangeException>(() => RecipeParameters.SourceModels(recipe, 2));
    }
}
