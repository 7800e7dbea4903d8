using Weld.Engine.Planning;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Planning;

/// <summary>Recipe → plan: tensor lists, layer renumbering, per-tensor parameters, validation messages.</summary>
public class PlannerTests
{
    private static MergePlan Plan(string yaml, out ModelSet models)
    {
        models = new ModelSet(null);
        return MergePlanner.Plan(RecipeHarness.Recipe(yaml), models);
    }

    private static RecipeException PlanError(string yaml)
    {
        using var models = new ModelSet(null);
        return Assert.Throws<RecipeException>(() => MergePlanner.Plan(RecipeHarness.Recipe(yaml), models));
    }

    [Fact]
    public void Gradient_density_is_interpolated_over_the_layers_and_embeddings_take_t_zero()
    {
        var plan = Plan("""
            models:
              - model: {zoo}/lm-ft-c
                parameters:
                  weight: 1.0
                  density: [0.9, 0.3]
            base_model: {zoo}/lm-base
            merge_method: ties
            """, out var models);
        using (models)
        {
            double Density(string tensor) => plan.Tensors.Single(t => t.Header.Name == tensor).ModelParameters[0].Number("density");
            Assert.Equal(0.9, Density("model.embed_tokens.weight"));
            Assert.Equal(0.9, Density("model.layers.0.mlp.up_proj.weight"));
            Assert.Equal(0.9 - 0.6 / 3, Density("model.layers.1.mlp.up_proj.weight"), 12);
            Assert.Equal(0.9 - 1.2 / 3, Density("model.layers.2.mlp.up_proj.weight"), 12);
            Assert.Equal(0.3, Density("model.layers.3.mlp.up_proj.weight"), 12);
            Assert.Equal(0.9, Density("lm_head.weight")); // post-layer weights at t = 0, as current mergekit
            Assert.Equal(39, plan.Tensors.Count);
            Assert.All(plan.Tensors, t => Assert.NotNull(t.Base));
        }
    }

    [Fact]
    public void Filters_pick_the_first_matching_value_per_tensor()
    {
        var plan = Plan("""
            slices:
              - sources:
                  - model: {zoo}/lm-ft-c
                    layer_range: [0, 4]
                  - model: {zoo}/lm-ft-python
                    layer_range: [0, 4]
            merge_method: slerp
            base_model: {zoo}/lm-ft-c
            parameters:
              t:
                - filter: self_attn
                  value: [0, 1]
                - filter: mlp
                  value: 0.25
                - value: 0.5
            """, out var models);
        using (models)
        {
            double T(string tensor) => plan.Tensors.Single(t => t.Header.Name == tensor).Global.Number("t");
            Assert.Equal(0.0, T("model.layers.0.self_attn.q_proj.weight"));
            Assert.Equal(1.0 / 3, T("model.layers.1.self_attn.q_proj.weight"), 12);
            Assert.Equal(1.0, T("model.layers.3.self_attn.k_proj.weight"));
            Assert.Equal(0.25, T("model.layers.2.mlp.down_proj.weight"));
            Assert.Equal(0.5, T("model.layers.2.input_layernorm.weight"));
            Assert.Equal(0.5, T("model.embed_tokens.weight"));
            var q = plan.Tensors.Single(t => t.Header.Name == "model.layers.1.self_attn.q_proj.weight");
            Assert.Single(q.Inputs);
            Assert.EndsWith("lm-ft-python", plan.ModelPaths[q.Inputs[0].Model]);
            Assert.EndsWith("lm-ft-c", plan.ModelPaths[q.Base!.Model]);
        }
    }

    [Fact]
    public void Source_parameters_beat_global_ones()
    {
        var plan = Plan("""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {weight: 0.25}
              - model: {zoo}/lm-ft-python
            merge_method: linear
            parameters:
              weight: 0.75
              normalize: false
            """, out var models);
        using (models)
        {
            var task = plan.Tensors[0];
            Assert.Equal(0.25, task.ModelParameters[0].Number("weight"));
            Assert.Equal(0.75, task.ModelParameters[1].Number("weight"));
            Assert.False(task.Global.Flag("normalize"));
        }
    }

    [Fact]
    public void Passthrough_slices_renumber_layers_and_count_them()
    {
        var plan = Plan("""
            slices:
              - sources:
                  - model: {zoo}/lm-ft-c
                    layer_range: [0, 3]
              - sources:
                  - model: {zoo}/lm-ft-python
                    layer_range: [1, 4]
            merge_method: passthrough
            """, out var models);
        using (models)
        {
            Assert.Equal(6, plan.OutputLayerCount);
            var layer3 = plan.Tensors.Single(t => t.Header.Name == "model.layers.3.mlp.up_proj.weight");
            Assert.Equal("model.layers.1.mlp.up_proj.weight", layer3.Inputs[0].TensorName);
            Assert.EndsWith("lm-ft-python", plan.ModelPaths[layer3.Inputs[0].Model]);
            Assert.Equal(6 * 9 + 3, plan.Tensors.Count);
            Assert.Equal(Enumerable.Range(0, 6), plan.Tensors.Select(t => LayerNames.LayerIndex(t.Header.Name)).OfType<int>().Distinct());
        }
    }

    [Theory]
    [InlineData("merge_method: dare-ties", "did you mean 'dare_ties'")]
    [InlineData("merge_method: magmx", "did you mean 'magmax'")]
    [InlineData("merge_method: slerp", "needs parameter t")]
    public void Method_problems_are_named(string methodLine, string expected)
    {
        var error = PlanError($$"""
            models:
              - model: {zoo}/lm-ft-c
            base_model: {zoo}/lm-base
            {{methodLine}}
            """);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Density_out_of_range_names_the_line_and_model()
    {
        var error = PlanError("""
            models:
              - model: {zoo}/lm-ft-c
                parameters:
                  weight: 1
                  density: 1.5
            base_model: {zoo}/lm-base
            merge_method: ties
            """);
        Assert.Contains("test.yml:5", error.Message);
        Assert.Contains("density = 1.5 is outside (0, 1]", error.Message);
        Assert.Contains("lm-ft-c", error.Message);
    }

    [Fact]
    public void Missing_models_weights_and_unsupported_features_are_refused_before_any_work()
    {
        Assert.Contains("not found", PlanError("""
            models:
              - model: {zoo}/no-such-model
                parameters: {weight: 1}
            merge_method: linear
            """).Message);
        Assert.Contains("needs parameter weight", PlanError("""
            models:
              - model: {zoo}/lm-ft-c
            merge_method: linear
            """).Message);
        Assert.Contains("not a PEFT adapter", PlanError("""
            models:
              - model: {zoo}/lm-base+{zoo}/lm-ft-c
                parameters: {weight: 1}
            merge_method: linear
            """).Message);
        Assert.Contains("tokenizer union: ", PlanError("""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {weight: 1}
            merge_method: linear
            tokenizer_source: union
            """).Message);
        Assert.Contains("model_stock takes at least 2", PlanError("""
            models:
              - model: {zoo}/lm-ft-c
            base_model: {zoo}/lm-base
            merge_method: model_stock
            """).Message);
        Assert.Contains("layer_range [2, 6] does not fit", PlanError("""
            slices:
              - sources:
                  - model: {zoo}/lm-ft-c
                    layer_range: [2, 6]
            merge_method: passthrough
            """).Message);
    }

    [Fact]
    public void Models_of_different_depth_are_refused_naming_both()
    {
        // The digits MLP (3 Linear layers) against the 4-layer decoder.
        var error = PlanError("""
            models:
              - model: {zoo}/lm-ft-c
                parameters: {weight: 1}
              - model: {zoo}/mlp-digits-a
                parameters: {weight: 1}
            merge_method: linear
            """);
        Assert.Contains("mlp-digits-a has 3 layers", error.Message);
        Assert.Contains("use slices:", error.Message);
    }

    [Fact]
    public void Layer_names_are_parsed_and_renamed()
    {
        Assert.Equal(12, LayerNames.LayerIndex("model.layers.12.mlp.up_proj.weight"));
        Assert.Equal(3, LayerNames.LayerIndex("transformer.h.3.attn.c_attn.weight"));
        Assert.Null(LayerNames.LayerIndex("model.embed_tokens.weight"));
        Assert.Equal("model.layers.7.self_attn.q_proj.weight", LayerNames.WithLayer("model.layers.0.self_attn.q_proj.weight", 7));
        Assert.True(LayerNames.IsPreLayer("model.embed_tokens.weight"));
        Assert.False(LayerNames.IsPreLayer("lm_head.weight"));
    }
}
