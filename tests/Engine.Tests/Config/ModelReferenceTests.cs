using Weld.Engine.Config;
using Xunit;

namespace Weld.Engine.Tests.Config;

public sealed class ModelReferenceTests
{
    [Fact]
    public void Parse_PlainPath()
    {
        ModelReference reference = ModelReference.Parse("org/model");
        Assert.Equal(new ModelPath("org/model", null), reference.Model);
        Assert.Null(reference.Lora);
        Assert.Equal("org/model", reference.ToString());
    }

    [Fact]
    public void Parse_RevisionsOnBothParts()
    {
        ModelReference reference = ModelReference.Parse("org/model@rev1+org/lora@rev2", line: 7);
        Assert.Equal(new ModelPath("org/model", "rev1"), reference.Model);
        Assert.Equal(new ModelPath("org/lora", "rev2"), reference.Lora);
        Assert.Equal("org/model@rev1+org/lora@rev2", reference.Raw);
        Assert.Equal(7, reference.Line);
    }

    [Fact]
    public void Equality_IgnoresWhereItWasWritten()
    {
        ModelReference a = ModelReference.Parse("m+l", 1);
        ModelReference b = new(new ModelPath("m", null), new ModelPath("l", null), null, "written differently", 9);
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, ModelReference.Parse("m"));
        Assert.NotEqual(ModelReference.Parse("m@r"), ModelReference.Parse("m"));
    }

    [Theory]
    [InlineData("+lora")]
    [InlineData("m+")]
    [InlineData("m@")]
    [InlineData("a+b+c")]
    public void Parse_RejectsMalformed(string text)
    {
        Assert.Throws<FormatException>(() => ModelReference.Parse(text));
    }

    [Fact]
    public void MappingForm_ModelStringIsNotSplitOnPlus()
    {
        // mergekit's ModelPath only splits '@'; '+' is part of the path in the mapping form.
        const string yaml = "merge_method: linear\nmodels:\n  - model:\n      model: dir/a+b@main\n      override_architecture: LlamaForCausalLM\n";
        MergeRecipe recipe = RecipeParser.Parse(yaml, "m.yml");
        ModelReference reference = recipe.Models![0].Model;
        Assert.Equal(new ModelPath("dir/a+b", "main"), reference.Model);
        Assert.Null(reference.Lora);
        Assert.Equal("LlamaForCausalLM", reference.OverrideArchitecture);
        Assert.Equal(4, reference.Line);
    }
}
