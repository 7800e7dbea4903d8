using Weld.Engine.Config;
using Xunit;

namespace Weld.Engine.Tests.Config;

public sealed class RecipeErrorTests
{
    private static string Error(string yaml) =>
        Assert.Throws<RecipeException>(() => RecipeParser.Parse(yaml, "recipe.yml")).Message;

    [Fact]
    public void BadYaml_NamesLine()
    {
        string message = Error("merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1\n");
        Assert.StartsWith("recipe.yml:", message);
        Assert.Contains("invalid YAML", message);
        int line = int.Parse(message.Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(line, 4, 5);
    }

    [Fact]
    public void BadIndentation_NamesLine()
    {
        string message = Error("merge_method: linear\nmodels:\n  - model: a\n parameters: x\n");
        Assert.StartsWith("recipe.yml:4: invalid YAML", message);
    }

    [Fact]
    public void UnknownTopLevelKey_NamesLineKeyAndSuggestion()
    {
        string message = Error("models:\n  - model: a\nmerge_metod: linear\n");
        Assert.Equal("recipe.yml:3: unknown top-level key 'merge_metod' (did you mean 'merge_method'?)", message);
    }

    [Fact]
    public void UnknownNestedKey_NamesLine()
    {
        string message = Error("merge_method: slerp\nslices:\n  - sources:\n      - model: a\n        layer-range: [0, 2]\n");
        Assert.Equal("recipe.yml:5: unknown slice source key 'layer-range' (did you mean 'layer_range'?)", message);
    }

    [Fact]
    public void UnknownKeyFarFromAll_ListsKnownKeys()
    {
        string message = Error("merge_method: linear\nmodels:\n  - model: a\n    zzzzzzzz: 1\n");
        Assert.Equal("recipe.yml:4: unknown models entry key 'zzzzzzzz' (expected one of: model, parameters)", message);
    }

    [Fact]
    public void MissingMergeMethod()
    {
        Assert.Equal("recipe.yml:1: missing required key 'merge_method'", Error("models:\n  - model: a\n"));
    }

    [Fact]
    public void UnknownMethod_SuggestsNormalisedName()
    {
        Assert.Equal("recipe.yml:3: unknown merge method 'dare-ties' (did you mean 'dare_ties'?)",
            Error("models:\n  - model: a\nmerge_method: dare-ties\n"));
    }

    [Fact]
    public void BothModelsAndSlices()
    {
        string yaml = "merge_method: linear\nmodels:\n  - model: a\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 1]\n";
        Assert.Equal("recipe.yml:4: give either 'models' or 'slices', not both", Error(yaml));
    }

    [Fact]
    public void NeitherModelsNorSlices()
    {
        Assert.Equal("recipe.yml:1: missing 'models' or 'slices': the recipe must say which models to merge",
            Error("merge_method: linear\ndtype: float16\n"));
    }

    [Theory]
    [InlineData("merge_method: 5\nmodels:\n  - model: a\n", "recipe.yml:1: 'merge_method' must be a string, got the number '5' (quote it if it is a name)")]
    [InlineData("merge_method: linear\nmodels: a\n", "recipe.yml:2: 'models' must be a list of '- model: ...' entries")]
    [InlineData("merge_method: linear\nmodels: []\n", "recipe.yml:2: 'models' is empty")]
    [InlineData("merge_method: linear\nmodels:\n  - a\n", "recipe.yml:3: each entry of 'models' must be a mapping with 'model' (and optional 'parameters')")]
    [InlineData("merge_method: linear\nmodels:\n  - parameters: {weight: 1}\n", "recipe.yml:3: models entry is missing required key 'model'")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\nparameters: [1, 2]\n", "recipe.yml:4: 'parameters' must be a mapping of parameter names to values")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight: {filter: mlp, value: 1}\n", "recipe.yml:5: parameter 'weight' is a single {filter, value} mapping; conditional values must be a list: '- filter: ...' / '  value: ...', with a last '- value: ...' as the default")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\nparameters:\n  weight: [1, x]\n", "recipe.yml:5: parameter 'weight' mixes numbers and strings in one list")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\nparameters:\n  weight: []\n", "recipe.yml:5: parameter 'weight' is an empty list")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\nparameters:\n  weight:\n", "recipe.yml:5: parameter 'weight' has no value")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\nparameters:\n  weight:\n    - filter: mlp\n", "recipe.yml:6: condition of parameter 'weight' is missing required key 'value'")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\ndtype: float17\n", "recipe.yml:4: unknown dtype 'float17' (did you mean 'float16'?)")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a+b+c\n", "recipe.yml:3: model reference 'a+b+c' has more than one '+' (expected 'model' or 'model+lora')")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a@x@y\n", "recipe.yml:3: model path 'a@x@y' in 'a@x@y' has more than one '@'")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\ntokenizer_source: base\ntokenizer:\n  source: union\n", "recipe.yml:5: give either 'tokenizer_source' or 'tokenizer', not both")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\nmodules:\n  text: {}\n", "recipe.yml:4: 'modules' (per-module recipes) is not supported; use 'models' or 'slices'")]
    [InlineData("merge_method: linear\nmodels:\n  - model: a\n---\nmerge_method: ties\n", "recipe.yml:5: the file holds more than one YAML document (multi-stage recipes are not supported); give one recipe per file")]
    [InlineData("- merge_method: linear\n", "recipe.yml:1: a recipe must be a mapping of keys such as merge_method, models or slices")]
    public void WrongShapesAndTypes_NameTheLine(string yaml, string expected)
    {
        Assert.Equal(expected, Error(yaml));
    }

    [Theory]
    [InlineData("[0, 1, 2]", "recipe.yml:5: 'layer_range' must be a list of two layer indices [start, end], end excluded")]
    [InlineData("[0, x]", "recipe.yml:5: 'layer_range end' must be an integer")]
    [InlineData("[0, 1.5]", "recipe.yml:5: 'layer_range end' must be an integer")]
    [InlineData("[4, 4]", "recipe.yml:5: 'layer_range' [4, 4] is empty or negative: need 0 <= start < end (end is excluded)")]
    [InlineData("[-1, 4]", "recipe.yml:5: 'layer_range' [-1, 4] is empty or negative: need 0 <= start < end (end is excluded)")]
    public void BadLayerRange_NamesLine(string range, string expected)
    {
        string yaml = $"merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: {range}\n";
        Assert.Equal(expected, Error(yaml));
    }

    [Fact]
    public void DuplicateKey_IsAnError()
    {
        string message = Error("merge_method: linear\nmodels:\n  - model: a\nmerge_method: ties\n");
        Assert.StartsWith("recipe.yml:4: ", message);
    }

    [Fact]
    public void EmptyText_IsAnError()
    {
        Assert.Equal("recipe.yml:1: the recipe is empty", Error(""));
    }
}
