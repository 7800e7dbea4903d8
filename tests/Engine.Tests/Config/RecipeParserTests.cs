using Weld.Engine.Config;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Config;

public sealed class RecipeParserTests
{
    private static double Number(ParameterSet set, string name, string tensor = "model.layers.0.mlp.up_proj.weight", double t = 0) =>
        set[name].Evaluate(tensor, t)!.Value.Number;

    [Fact]
    public void LinearSoup_ParsesModelsAndWeights()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.LinearSoup, "soup.yml");

        Assert.Equal("linear", recipe.MergeMethod);
        Assert.Equal(11, recipe.MergeMethodLine);
        Assert.Null(recipe.Slices);
        Assert.Null(recipe.BaseModel);
        Assert.Equal(DType.F16, recipe.DType);
        Assert.Null(recipe.OutDType);
        Assert.Equal(0, recipe.Parameters.Count);
        Assert.Equal("soup.yml", recipe.SourceName);
        Assert.Equal(ExampleRecipes.LinearSoup, recipe.YamlText);

        IReadOnlyList<InputModel> models = recipe.Models!;
        Assert.Equal(3, models.Count);
        Assert.Equal(["psmathur/orca_mini_v3_13b", "WizardLM/WizardLM-13B-V1.2", "garage-bAInd/Platypus2-13B"],
            models.Select(m => m.Model.Model.Path));
        Assert.Equal([1.0, 0.3, 0.5], models.Select(m => Number(m.Parameters, "weight")));
        Assert.Equal([2, 5, 8], models.Select(m => m.Line));
        Assert.Equal(1, recipe.SliceCount);
    }

    [Fact]
    public void Ties_ParsesGradientsConditionsAndGlobalFlags()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.Ties, "ties.yml");

        Assert.Equal("ties", recipe.MergeMethod);
        Assert.Equal("TheBloke/Llama-2-13B-fp16", recipe.BaseModel!.Raw);
        Assert.Equal(18, recipe.BaseModel.Line);
        IReadOnlyList<InputModel> models = recipe.Models!;

        var density0 = Assert.IsType<GradientParameter>(models[0].Parameters["density"]);
        Assert.Equal([1.0, 0.7, 0.1], density0.Points);
        Assert.Equal(4, density0.Line);
        var weight1 = Assert.IsType<GradientParameter>(models[1].Parameters["weight"]);
        Assert.Equal([0.0, 0.3, 0.7, 1.0], weight1.Points);

        var weight2 = Assert.IsType<ConditionalParameter>(models[2].Parameters["weight"]);
        Assert.Equal(2, weight2.Conditions.Count);
        Assert.Equal("mlp", weight2.Conditions[0].Filter);
        Assert.Null(weight2.Conditions[1].Filter);
        Assert.Equal(14, weight2.Conditions[0].Line);

        ParameterScalar normalize = recipe.Parameters["normalize"].Evaluate("x", 0)!.Value;
        Assert.Equal(ParameterScalarKind.Boolean, normalize.Kind);
        Assert.True(normalize.Boolean);
        Assert.Equal(20, normalize.Line);
        Assert.True(recipe.Parameters["int8_mask"].Evaluate("x", 0)!.Value.Boolean);
    }

    [Fact]
    public void DareTies_EntryWithOnlyModelHasNoParameters()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.DareTies, "dare.yml");

        Assert.Equal("dare_ties", recipe.MergeMethod);
        IReadOnlyList<InputModel> models = recipe.Models!;
        Assert.Equal(0, models[0].Parameters.Count);
        Assert.Equal(recipe.BaseModel, models[0].Model);
        Assert.Equal(0.53, Number(models[1].Parameters, "density"));
        Assert.Equal(0.4, Number(models[1].Parameters, "weight"));
        Assert.Equal(0.3, Number(models[2].Parameters, "weight"));
        Assert.True(recipe.Parameters["int8_mask"].Evaluate("x", 0)!.Value.Boolean);
        Assert.Equal(DType.BF16, recipe.DType);
    }

    [Fact]
    public void Slerp_ParsesSlicesAndFilteredGradient()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.Slerp, "slerp.yml");

        Assert.Null(recipe.Models);
        OutputSlice slice = Assert.Single(recipe.Slices!);
        Assert.Equal(2, slice.Sources.Count);
        Assert.Equal(new LayerRange(0, 40), slice.Sources[0].LayerRange);
        Assert.Equal(40, slice.Sources[1].LayerRange.Count);
        Assert.Equal("garage-bAInd/Platypus2-13B", slice.Sources[1].Model.Raw);
        Assert.Equal(5, slice.Sources[1].Line);

        var t = Assert.IsType<ConditionalParameter>(recipe.Parameters["t"]);
        Assert.Equal(["self_attn", "mlp", null], t.Conditions.Select(c => c.Filter));
        Assert.Equal([0.0, 0.5, 0.3, 0.7, 1.0], Assert.IsType<GradientParameter>(t.Conditions[0].Value).Points);
        Assert.Equal([1.0, 0.5, 0.7, 0.3, 0.0], Assert.IsType<GradientParameter>(t.Conditions[1].Value).Points);
        Assert.Equal(0.5, Assert.IsType<ScalarParameter>(t.Conditions[2].Value).Value.Number);

        // Layer 10 of 40: t = 10/39; self_attn gradient has 4 segments: x = 40/39, segment 1.
        double position = LayerPosition.InSlice(10, 40);
        double x = position * 4;
        double expected = 0.5 + ((0.3 - 0.5) * (x - 1));
        Assert.Equal(expected, t.Evaluate("model.layers.10.self_attn.q_proj.weight", position)!.Value.Number, 12);
        Assert.Equal(0.5, t.Evaluate("model.layers.10.input_layernorm.weight", position)!.Value.Number);
    }

    [Fact]
    public void Passthrough_StacksLayerRanges()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.Passthrough, "frank.yml");

        Assert.Equal("passthrough", recipe.MergeMethod);
        Assert.Equal(2, recipe.SliceCount);
        Assert.Equal(new LayerRange(0, 24), recipe.Slices![0].Sources[0].LayerRange);
        Assert.Equal(new LayerRange(8, 40), recipe.Slices[1].Sources[0].LayerRange);
        Assert.Equal(32, recipe.Slices[1].Sources[0].LayerRange.Count);
        Assert.Equal(recipe.Slices[0].Sources[0].Model, recipe.Slices[1].Sources[0].Model);
    }

    [Fact]
    public void ModelStock_ListsModelsAndAddsBaseAsLastSource()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.ModelStock, "stock.yml");

        Assert.Equal("model_stock", recipe.MergeMethod);
        Assert.Equal(3, recipe.Models!.Count);
        Assert.All(recipe.Models, m => Assert.Equal(0, m.Parameters.Count));
        Assert.Equal(
            ["NousResearch/Meta-Llama-3-8B-Instruct", "cognitivecomputations/dolphin-2.9-llama3-8b",
             "Weyaxi/Einstein-v6.1-Llama3-8B", "meta-llama/Meta-Llama-3-8B"],
            RecipeParameters.SourceModels(recipe, 0).Select(m => m.ToString()));
    }

    [Fact]
    public void TaskArithmetic_ParsesLoraStringAndMappingReferencesAndTopLevelOptions()
    {
        MergeRecipe recipe = RecipeParser.Parse(ExampleRecipes.TaskArithmetic, "ta.yml");

        Assert.Equal("task_arithmetic", recipe.MergeMethod);
        Assert.Equal(0.8, recipe.Parameters["lambda"].Evaluate("x", 0)!.Value.Number);
        Assert.False(recipe.Parameters["normalize"].Evaluate("x", 0)!.Value.Boolean);
        Assert.Equal(TokenizerSourceKind.Union, recipe.TokenizerSource!.Kind);
        Assert.Null(recipe.TokenizerSource.Model);
        Assert.Equal(DType.BF16, recipe.OutDType);
        Assert.Null(recipe.DType);
        Assert.Equal("chatml", recipe.ChatTemplate);

        ModelReference first = recipe.Models![0].Model;
        Assert.Equal(new ModelPath("meta-llama/Llama-2-7b-hf", null), first.Model);
        Assert.Equal(new ModelPath("someone/llama2-lora", "v2"), first.Lora);
        Assert.Equal("meta-llama/Llama-2-7b-hf+someone/llama2-lora@v2", first.Raw);
        Assert.NotEqual(recipe.BaseModel, first);
        Assert.Equal(0.7, recipe.Models[0].Parameters["weight"].Evaluate("x", 0)!.Value.Number);

        ModelReference second = recipe.Models[1].Model;
        Assert.Equal(new ModelPath("./local/ft-2", "main"), second.Model);
        Assert.Equal(new ModelPath("./adapters/chat", null), second.Lora);
        Assert.Equal("./local/ft-2@main+./adapters/chat", second.ToString());
        Assert.Equal(7, second.Line); // the mapping under "model:" starts on the next line
    }

    [Fact]
    public void TokenizerSection_IsModelled()
    {
        const string yaml = """
            merge_method: linear
            models:
              - model: a
              - model: b
            tokenizer:
              source: base
              pad_to_multiple_of: 64
              tokens:
                <|im_start|>:
                  source: a
                <|im_end|>:
                  source:
                    kind: model_token
                    model: b
                    token_id: 32000
                  force: true
                <pad>:
                  source:
                    kind: zero
                <sep>: {}
            """;
        MergeRecipe recipe = RecipeParser.Parse(yaml, "tok.yml");

        TokenizerSettings tokenizer = recipe.Tokenizer!;
        Assert.Equal(TokenizerSourceKind.Base, tokenizer.Source.Kind);
        Assert.Equal(64, tokenizer.PadToMultipleOf);
        Assert.Equal(["<|im_start|>", "<|im_end|>", "<pad>", "<sep>"], tokenizer.Tokens.Select(t => t.Token));
        Assert.Equal(TokenEmbeddingSourceKind.Model, tokenizer.Tokens[0].SourceKind);
        Assert.Equal("a", tokenizer.Tokens[0].Model!.Raw);
        Assert.Equal(TokenEmbeddingSourceKind.ModelToken, tokenizer.Tokens[1].SourceKind);
        Assert.Equal(32000, tokenizer.Tokens[1].SourceTokenId);
        Assert.Null(tokenizer.Tokens[1].SourceToken);
        Assert.True(tokenizer.Tokens[1].Force);
        Assert.False(tokenizer.Tokens[0].Force);
        Assert.Equal(TokenEmbeddingSourceKind.Zero, tokenizer.Tokens[2].SourceKind);
        Assert.Equal(TokenEmbeddingSourceKind.Default, tokenizer.Tokens[3].SourceKind);
        Assert.Null(recipe.TokenizerSource);
    }

    [Fact]
    public void TokenizerSource_ModelWithLora_IsModelledNotRejected()
    {
        MergeRecipe recipe = RecipeParser.Parse(
            "merge_method: linear\nmodels:\n  - model: a\ntokenizer_source: org/model+org/lora\n", "t.yml");

        Assert.Equal(TokenizerSourceKind.Model, recipe.TokenizerSource!.Kind);
        Assert.Equal(new ModelPath("org/lora", null), recipe.TokenizerSource.Model!.Lora);
    }

    [Fact]
    public void SteppedStringsQuotedNumbersAndScalarKinds_FollowPyYamlResolution()
    {
        const string yaml = """
            merge_method: linear
            models:
              - model: a
            parameters:
              mode: [alpha, beta, gamma]
              quoted: "0.5"
              plain: 5e-1
              flag: yes
              underscored: 1_000
              name: hello
            """;
        MergeRecipe recipe = RecipeParser.Parse(yaml, "s.yml");

        var mode = Assert.IsType<SteppedParameter>(recipe.Parameters["mode"]);
        Assert.Equal(["alpha", "beta", "gamma"], mode.Steps.Select(s => s.Text));
        Assert.Equal(ParameterScalarKind.String, recipe.Parameters["quoted"].Evaluate("x", 0)!.Value.Kind);
        Assert.Equal(0.5, recipe.Parameters["plain"].Evaluate("x", 0)!.Value.Number);
        Assert.True(recipe.Parameters["flag"].Evaluate("x", 0)!.Value.Boolean);
        Assert.Equal(1000, recipe.Parameters["underscored"].Evaluate("x", 0)!.Value.Number);
        Assert.Equal("hello", recipe.Parameters["name"].Evaluate("x", 0)!.Value.Text);
    }

    [Fact]
    public void Load_ReadsFileAndNamesItInErrors()
    {
        string dir = TestPaths.NewTempDir();
        string good = Path.Combine(dir, "good.yml");
        File.WriteAllText(good, ExampleRecipes.Slerp);
        MergeRecipe recipe = RecipeParser.Load(good);
        Assert.Equal(good, recipe.SourceName);
        Assert.Equal("slerp", recipe.MergeMethod);

        string bad = Path.Combine(dir, "bad.yml");
        File.WriteAllText(bad, "merge_method: linear\nmodels:\n  - model: a\nfoo: 1\n");
        var error = Assert.Throws<RecipeException>(() => RecipeParser.Load(bad));
        Assert.StartsWith($"{bad}:4: ", error.Message);

        string missing = Path.Combine(dir, "missing.yml");
        error = Assert.Throws<RecipeException>(() => RecipeParser.Load(missing));
        Assert.StartsWith($"{missing}: cannot read the recipe", error.Message);
    }
}
