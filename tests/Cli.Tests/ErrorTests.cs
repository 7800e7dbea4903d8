using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>
/// Bad input: exit 1, one <c>weld: error:</c> message naming the file / tensor / recipe line, no stack trace,
/// and no output folder (nor a hidden partial one) left behind.
/// </summary>
public sealed class ErrorTests
{
    private readonly string _temp = TestPaths.NewTempDir("weld-cli");

    private string Output => Path.Combine(_temp, "out");

    /// <summary>A linear merge of lm-ft-python (the template) with <paramref name="second"/>.</summary>
    private static string LinearWith(string second) => $"""
        models:
          - model: {Recipes.ExampleModel("lm-ft-python")}
            parameters: {"{weight: 1.0}"}
          - model: {second}
            parameters: {"{weight: 1.0}"}
        merge_method: linear
        dtype: float32

        """;

    private CliResult MergeWith(string secondModel) =>
        WeldCli.Run("merge", Recipes.Write(_temp, LinearWith(secondModel)), "-o", Output);

    [Fact]
    public void TruncatedSafetensors_NamesTheFileAndTheTensorCutOff()
    {
        string model = ModelFiles.Copy(Recipes.ExampleModel("lm-ft-c"), Path.Combine(_temp, "truncated"));
        string file = Path.Combine(model, "model.safetensors");
        using (var stream = new FileStream(file, FileMode.Open)) stream.SetLength(stream.Length - 1000);
        // The last tensor in the file (sorted names) is model.norm.weight [128] BF16: 256 bytes, then
        // model.layers.3.self_attn.v_proj.weight runs past the end too; the header parser names one of them.
        CliResult merge = MergeWith(model);
        CliAssert.InputError(merge, file, "truncated");
        Assert.Contains("tensor 'model.", merge.Stderr, StringComparison.Ordinal);
        CliAssert.NoOutputLeft(Output);

        CliAssert.InputError(WeldCli.Run("inspect", model), file, "truncated");
    }

    [Fact]
    public void SafetensorsCutInsideItsHeader_NamesTheFile()
    {
        string model = ModelFiles.Copy(Recipes.ExampleModel("lm-ft-c"), Path.Combine(_temp, "cut"));
        string file = Path.Combine(model, "model.safetensors");
        using (var stream = new FileStream(file, FileMode.Open)) stream.SetLength(100);

        CliAssert.InputError(MergeWith(model), file, "truncated");
        CliAssert.NoOutputLeft(Output);
        CliAssert.InputError(WeldCli.Run("inspect", file), file, "truncated");
    }

    [Fact]
    public void SafetensorsWithBadHeaderJson_NamesTheFile()
    {
        string model = ModelFiles.Copy(Recipes.ExampleModel("lm-ft-c"), Path.Combine(_temp, "bad-json"));
        string file = Path.Combine(model, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        Assert.Equal((byte)'{', bytes[8]); // the header's opening brace follows its 8-byte length
        bytes[8] = (byte)'#';
        File.WriteAllBytes(file, bytes);

        CliAssert.InputError(MergeWith(model), file, "JSON");
        CliAssert.NoOutputLeft(Output);
        CliAssert.InputError(WeldCli.Run("inspect", model), file, "JSON");
    }

    [Fact]
    public void PickleOnlyFolder_IsRefusedNamingTheFile()
    {
        string model = Path.Combine(_temp, "pickled");
        Directory.CreateDirectory(model);
        File.Copy(Path.Combine(Recipes.ExampleModel("lm-ft-c"), "config.json"), Path.Combine(model, "config.json"));
        // Pickle's protocol-2 header: the content never matters, Weld must refuse it by name without reading it.
        File.WriteAllBytes(Path.Combine(model, "pytorch_model.bin"), [0x80, 0x02, (byte)'}', (byte)'q', 0x00, (byte)'.']);

        CliAssert.InputError(MergeWith(model), model, "pytorch_model.bin", "pickle");
        CliAssert.NoOutputLeft(Output);
        CliAssert.InputError(WeldCli.Run("inspect", model), model, "pytorch_model.bin", "pickle");
    }

    [Fact]
    public void UnknownMethod_SuggestsTheNearestAndNamesTheLine()
    {
        string text = File.ReadAllText(Recipes.WriteExample("dare-ties.yml", _temp)).Replace("merge_method: dare_ties", "merge_method: dare-ties", StringComparison.Ordinal);
        string recipe = Recipes.Write(_temp, text);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output);

        CliAssert.InputError(result, $"{recipe}:{Recipes.LineOf(text, "merge_method:")}", "dare-ties", "dare_ties");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void DensityAboveOne_NamesTheLineAndTheParameter()
    {
        string text = File.ReadAllText(Recipes.WriteExample("ties.yml", _temp)).Replace("density: 0.3", "density: 1.5", StringComparison.Ordinal);
        string recipe = Recipes.Write(_temp, text);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output);

        CliAssert.InputError(result, $"{recipe}:{Recipes.LineOf(text, "density: 1.5")}", "density", "1.5");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void MissingModelPath_NamesThePathAndTheLine()
    {
        string missing = Path.Combine(_temp, "no-such-model");
        string text = LinearWith(missing);

        CliResult result = MergeWith(missing);

        CliAssert.InputError(result, missing, $".yml:{Recipes.LineOf(text, "no-such-model")}:", "not found");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void ModelMissingATensor_NamesTheModelAndTheTensor()
    {
        const string Dropped = "model.layers.2.mlp.down_proj.weight";
        string model = ModelFiles.Rewrite(Recipes.ExampleModel("lm-ft-c"), Path.Combine(_temp, "missing-tensor"),
            (name, shape) => name == Dropped ? null : shape);
        using (var check = SafeTensorsFile.Open(Path.Combine(model, "model.safetensors")))
            Assert.Equal(38, check.Tensors.Count);

        CliResult result = MergeWith(model);

        CliAssert.InputError(result, model, Dropped, "missing");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void ShapeMismatch_NamesTheTensorBothShapesAndTheModel()
    {
        const string Changed = "model.layers.1.mlp.up_proj.weight";
        string model = ModelFiles.Rewrite(Recipes.ExampleModel("lm-ft-c"), Path.Combine(_temp, "reshaped"),
            (name, shape) => name == Changed ? [383, 128] : shape);

        CliResult result = MergeWith(model);

        CliAssert.InputError(result, model, Changed, "[383, 128]", "[384, 128]");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void TokenizerSourceUnion_OverModelsWithoutTokenizerJson_IsRefusedNamingTheLine()
    {
        string text = LinearWith(Recipes.ExampleModel("lm-ft-c")) + "tokenizer_source: union\n";
        string recipe = Recipes.Write(_temp, text);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output);

        CliAssert.InputError(result, $"{recipe}:{Recipes.LineOf(text, "tokenizer_source")}", "union", "no tokenizer.json");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void ModelPlusNonAdapterReference_IsRefusedNamingTheLine()
    {
        // model+lora references are folded in (see LoraRecipeReferenceTests); a '+' part that is no adapter is an input error.
        string reference = $"{Recipes.ExampleModel("lm-base")}+{TestPaths.Model("lm-ft-c")}";
        string text = LinearWith(reference);

        CliResult result = MergeWith(reference);

        CliAssert.InputError(result, $".yml:{Recipes.LineOf(text, "+")}:", "not a PEFT adapter", "lm-ft-c");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void ExistingOutput_IsKeptWithoutOverwrite_AndReplacedWithIt()
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);
        Directory.CreateDirectory(Output);
        OutputFolder.WriteMarker(Output); // an earlier Weld output (a foreign folder is refused even with --overwrite)
        string sentinel = Path.Combine(Output, "keep-me.txt");
        File.WriteAllText(sentinel, "an earlier result");

        CliResult refused = WeldCli.Run("merge", recipe, "-o", Output);

        CliAssert.InputError(refused, Output, "exists");
        Assert.Equal("an earlier result", File.ReadAllText(sentinel));
        Assert.Equal([Path.Combine(Output, OutputFolder.MarkerFileName), sentinel], Directory.EnumerateFileSystemEntries(Output).Order(StringComparer.Ordinal));
        AssertNoHiddenSiblings();

        CliResult replaced = WeldCli.Run("merge", recipe, "-o", Output, "--overwrite");

        CliAssert.Succeeded(replaced);
        Assert.False(File.Exists(sentinel));
        Assert.True(File.Exists(Path.Combine(Output, "model.safetensors")));
        AssertNoHiddenSiblings();
    }

    [Fact]
    public void NoSafeSerialization_IsRefused()
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output, "--no-safe-serialization");

        CliAssert.InputError(result, "--no-safe-serialization", "safetensors");
        CliAssert.NoOutputLeft(Output);
    }

    [Theory]
    [InlineData("--device", "cuda")]
    [InlineData("--device", "cuda:1")]
    [InlineData("--cuda")]
    public void CudaDevice_WithoutThatDevice_IsAnInputErrorSayingWhy(params string[] flags)
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);
        int ordinal = flags.Contains("cuda:1") ? 1 : 0;
        // Where the device exists the merge runs; ExampleMergeTests compares its bytes with the CPU's.
        if (Weld.Kernels.Gpu.GpuDevice.ProbeCuda(ordinal, out string reason))
            return;

        CliResult result = WeldCli.Run(["merge", recipe, "-o", Output, .. flags]);

        CliAssert.InputError(result, "cuda", reason);
        CliAssert.NoOutputLeft(Output);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    public void InvalidThreadCount_IsAnInputErrorNotACrash(string threads)
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output, "-j", threads);

        CliAssert.InputError(result, "num-threads", threads);
        CliAssert.NoOutputLeft(Output);
    }

    [Theory]
    [InlineData("5X")]
    [InlineData("-5")]
    [InlineData("0")]
    public void InvalidShardSize_IsAnInputError(string size)
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output, "--out-shard-size", size);

        CliAssert.InputError(result);
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void NoOutputFolder_IsAnInputError()
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);

        CliAssert.InputError(WeldCli.Run("merge", recipe), "-o OUT");
    }

    [Fact]
    public void UnknownDevice_IsRefused()
    {
        string recipe = Recipes.WriteExample("linear-soup.yml", _temp);

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output, "--device", "tpu");

        CliAssert.InputError(result, "tpu");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void RecipeThatIsAFolder_NamesIt()
    {
        CliAssert.InputError(WeldCli.Run("merge", _temp, "-o", Output), _temp);
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void MissingRecipe_NamesTheFile()
    {
        string recipe = Path.Combine(_temp, "nope.yml");

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output);

        CliAssert.InputError(result, recipe);
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void InspectOfAMissingPath_NamesIt()
    {
        string missing = Path.Combine(_temp, "nothing-here");

        CliAssert.InputError(WeldCli.Run("inspect", missing), missing);
    }

    private void AssertNoHiddenSiblings() =>
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(_temp), e => Path.GetFileName(e).StartsWith(".out.weld-", StringComparison.Ordinal));
}
