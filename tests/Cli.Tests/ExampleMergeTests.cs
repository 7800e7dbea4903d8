using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>Every recipe of <c>examples/</c> merges end to end into a complete Hugging Face folder.</summary>
public sealed partial class ExampleMergeTests
{
    private static readonly string[] s_layerTensorSuffixes =
    [
        "input_layernorm.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
        "post_attention_layernorm.weight", "self_attn.k_proj.weight", "self_attn.o_proj.weight",
        "self_attn.q_proj.weight", "self_attn.v_proj.weight",
    ];

    public static TheoryData<string> Examples() => new(Recipes.ExampleNames());

    [Fact]
    public void Examples_AreAllFound()
    {
        // Guards the theory below against silently running over nothing.
        Assert.Equal(26, Recipes.ExampleNames().Count()); // 10 original + 12 from the methods branch + 3 research + tsv
    }

    [Theory]
    [MemberData(nameof(Examples))]
    public void Example_MergesIntoACompleteModelFolder(string example)
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample(example, temp);
        string output = Path.Combine(temp, "out");

        CliResult result = WeldCli.Run("merge", recipe, "-o", output);

        CliAssert.Succeeded(result);
        // stdout is for results (merge has none); progress and the summary are diagnostics on stderr.
        Assert.Equal("", result.Stdout);
        string recipeText = File.ReadAllText(recipe);
        Assert.Equal(
            [".weld", "README.md", "config.json", "mergekit_config.yml", "model.safetensors"],
            Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(recipeText, File.ReadAllText(Path.Combine(output, "mergekit_config.yml")));
        AssertModelCardTags(File.ReadAllText(Path.Combine(output, "README.md")));

        // The output dtype is the recipe's out_dtype, else its dtype (read here by a plain regex, not the parser).
        string torchDType = RecipeKey(recipeText, "out_dtype") ?? RecipeKey(recipeText, "dtype")!;
        bool passthrough = example == "passthrough-stack.yml";
        int layers = passthrough ? 6 : 4;
        AssertConfig(output, torchDType, layers);
        Assert.Contains($"merged {39 + (layers - 4) * 9} tensors into {output} (1 shard(s))", result.Stderr, StringComparison.Ordinal);

        using ModelFolder merged = ModelFolder.Open(output);
        using ModelFolder reference = ModelFolder.Open(Recipes.ExampleModel("lm-base"));
        var expectedNames = passthrough ? LlamaTensorNames(layers) : reference.TensorNames.ToHashSet(StringComparer.Ordinal);
        Assert.Equal(expectedNames.Order(StringComparer.Ordinal), merged.TensorNames.Order(StringComparer.Ordinal));
        Assert.Equal(39 + (layers - 4) * 9, merged.TensorNames.Count);
        string expectedDType = torchDType switch { "bfloat16" => "BF16", "float32" => "F32", _ => throw new InvalidOperationException(torchDType) };
        foreach (string name in merged.TensorNames)
        {
            ModelTensor tensor = merged.GetTensor(name);
            Assert.Equal(expectedDType, Weld.Engine.SafeTensors.DTypes.ToName(tensor.DType));
            Assert.Equal(reference.GetTensor(LayerZeroName(name)).Shape, tensor.Shape);
            Assert.All(ModelFiles.Read(merged, name), v => Assert.True(float.IsFinite(v), $"{name} holds {v}"));
        }
    }

    [Fact]
    public void PassthroughStack_CopiesTheSlicedLayersBitForBit()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string output = Path.Combine(temp, "out");
        CliAssert.Succeeded(WeldCli.Run("merge", Recipes.WriteExample("passthrough-stack.yml", temp), "-o", output));

        using ModelFolder merged = ModelFolder.Open(output);
        using ModelFolder c = ModelFolder.Open(Recipes.ExampleModel("lm-ft-c"));
        using ModelFolder python = ModelFolder.Open(Recipes.ExampleModel("lm-ft-python"));
        // Output layers 0-2 are lm-ft-c's layers 0-2; output layers 3-5 are lm-ft-python's layers 1-3.
        for (int layer = 0; layer < 6; layer++)
        {
            (ModelFolder source, int sourceLayer) = layer < 3 ? (c, layer) : (python, layer - 2);
            foreach (string suffix in s_layerTensorSuffixes)
            {
                Assert.Equal(
                    ModelFiles.Bits(ModelFiles.Read(source, $"model.layers.{sourceLayer}.{suffix}")),
                    ModelFiles.Bits(ModelFiles.Read(merged, $"model.layers.{layer}.{suffix}")));
            }
        }

        // Embeddings come from the first slice's model, the final norm and lm_head from the last slice's.
        Assert.Equal(ModelFiles.Bits(ModelFiles.Read(c, "model.embed_tokens.weight")), ModelFiles.Bits(ModelFiles.Read(merged, "model.embed_tokens.weight")));
        Assert.Equal(ModelFiles.Bits(ModelFiles.Read(python, "model.norm.weight")), ModelFiles.Bits(ModelFiles.Read(merged, "model.norm.weight")));
        Assert.Equal(ModelFiles.Bits(ModelFiles.Read(python, "lm_head.weight")), ModelFiles.Bits(ModelFiles.Read(merged, "lm_head.weight")));
    }

    [Fact]
    public void MergekitYamlAlias_TakesTheOutputAsASecondArgument()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample("linear-soup.yml", temp);
        string aliased = Path.Combine(temp, "aliased");
        string plain = Path.Combine(temp, "plain");

        CliAssert.Succeeded(WeldCli.Run("mergekit-yaml", recipe, aliased, "--copy-tokenizer", "--lazy-unpickle"));
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", plain));

        Assert.Equal(File.ReadAllBytes(Path.Combine(plain, "model.safetensors")), File.ReadAllBytes(Path.Combine(aliased, "model.safetensors")));
    }

    [Fact]
    public void RelativeModelPaths_ResolveAgainstTheRecipesFolder()
    {
        // The in-process working directory is the test's output folder: these relative paths only exist
        // relative to the recipe's folder, which the engine tries second.
        string temp = TestPaths.NewTempDir("weld-cli");
        string relative = Path.GetRelativePath(temp, Path.Combine(Recipes.ExamplesFolder, "models"));
        Assert.False(Directory.Exists(Path.Combine(relative, "lm-base")), "the relative path also resolves from the working directory");
        string text = File.ReadAllText(Path.Combine(Recipes.ExamplesFolder, "task-arithmetic.yml")).Replace(": models", ": " + relative, StringComparison.Ordinal);
        string recipe = Recipes.Write(temp, text);
        string absolute = Path.Combine(temp, "absolute");
        string output = Path.Combine(temp, "out");

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", output, "-q"));
        CliAssert.Succeeded(WeldCli.Run("merge", Recipes.WriteExample("task-arithmetic.yml", Directory.CreateDirectory(Path.Combine(temp, "abs")).FullName), "-o", absolute, "-q"));

        Assert.Equal(File.ReadAllBytes(Path.Combine(absolute, "model.safetensors")), File.ReadAllBytes(Path.Combine(output, "model.safetensors")));
    }

    [Fact]
    public void Quiet_PrintsNothing()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        CliResult result = WeldCli.Run("merge", Recipes.WriteExample("slerp.yml", temp), "-o", Path.Combine(temp, "out"), "--quiet");

        CliAssert.Succeeded(result);
        Assert.Equal("", result.Stdout);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public void NoWriteModelCard_LeavesOutReadmeAndRecipe()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string output = Path.Combine(temp, "out");
        CliAssert.Succeeded(WeldCli.Run("merge", Recipes.WriteExample("slerp.yml", temp), "-o", output, "-q", "--no-write-model-card"));

        Assert.Equal([".weld", "config.json", "model.safetensors"], Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void LinearSoup_IsTheMeanOfTheFourFineTunesRoundedToBf16()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string output = Path.Combine(temp, "out");
        CliAssert.Succeeded(WeldCli.Run("merge", Recipes.WriteExample("linear-soup.yml", temp), "-o", output, "-q"));

        Dictionary<string, float[]> merged = ModelFiles.ReadAll(output);
        Dictionary<string, float[]>[] inputs = new[] { "lm-ft-prose", "lm-ft-c", "lm-ft-python", "lm-ft-markup" }
            .Select(m => ModelFiles.ReadAll(Recipes.ExampleModel(m))).ToArray();
        long elements = 0, inexact = 0;
        foreach ((string name, float[] actual) in merged)
        {
            for (int i = 0; i < actual.Length; i++)
            {
                // Scalar reference in float64: the mean is exact enough that only its bf16 rounding matters.
                double mean = (inputs[0][name][i] + (double)inputs[1][name][i] + inputs[2][name][i] + inputs[3][name][i]) / 4;
                float expected = RoundToBf16((float)mean);
                elements++;
                if (BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual[i])) continue;
                // float32 arithmetic may land on the other side of a bf16 rounding boundary: then it is the
                // neighbouring bf16 value, never further.
                inexact++;
                Assert.True(Math.Abs(BitConverter.SingleToInt32Bits(expected) - BitConverter.SingleToInt32Bits(actual[i])) == 1 << 16,
                    $"{name}[{i}]: expected {expected}, got {actual[i]}");
            }
        }

        Assert.Equal(853_120, elements);
        Assert.True(inexact < elements / 1000, $"{inexact} of {elements} elements are one bf16 step off the float64 mean");
    }

    /// <summary>Round-to-nearest-even to bfloat16 (finite values), returned as the float it stands for.</summary>
    private static float RoundToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000;
        return BitConverter.UInt32BitsToSingle(rounded);
    }

    private static void AssertModelCardTags(string card)
    {
        Assert.StartsWith("---\n", card, StringComparison.Ordinal);
        int end = card.IndexOf("\n---\n", 4, StringComparison.Ordinal);
        Assert.True(end > 0, "the model card's front matter is not closed");
        string[] frontMatter = card[4..end].Split('\n');
        int tags = Array.IndexOf(frontMatter, "tags:");
        Assert.True(tags >= 0, "no tags: in the front matter");
        var tagValues = frontMatter.Skip(tags + 1).TakeWhile(l => l.StartsWith("- ", StringComparison.Ordinal)).Select(l => l[2..]).ToList();
        Assert.Contains("merge", tagValues);
        Assert.Contains("weld", tagValues);
    }

    private static void AssertConfig(string output, string torchDType, int layers)
    {
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(output, "config.json")))!;
        var template = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(Recipes.ExampleModel("lm-base"), "config.json")))!;
        Assert.Equal(torchDType, (string?)config["torch_dtype"]);
        Assert.Equal(layers, (int?)config["num_hidden_layers"]);
        // Everything else is the template model's config unchanged.
        template["torch_dtype"] = torchDType;
        template["num_hidden_layers"] = layers;
        Assert.True(JsonNode.DeepEquals(template, config), $"config.json differs from the template's: {config}");
    }

    private static string? RecipeKey(string recipeText, string key)
    {
        Match match = Regex.Match(recipeText, $"^{Regex.Escape(key)}:\\s*(\\S+)", RegexOptions.Multiline);
        return match.Success ? match.Groups[1].Value : null;
    }

    private static HashSet<string> LlamaTensorNames(int layers)
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight" };
        for (int layer = 0; layer < layers; layer++)
            foreach (string suffix in s_layerTensorSuffixes) names.Add($"model.layers.{layer}.{suffix}");
        return names;
    }

    /// <summary>The name of the same tensor in layer 0 (all layers have the same shapes).</summary>
    private static string LayerZeroName(string name) => LayerNumber().Replace(name, "model.layers.0.");

    [GeneratedRegex(@"^model\.layers\.\d+\.")]
    private static partial Regex LayerNumber();
}
