using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>
/// The input side of the error contract: recipe keys the method does not read, chat templates, non-finite values,
/// integer tensors, malformed files and files truncated while a merge reads them. Bad input is exit 1 with one line
/// naming the file / tensor / recipe line and no output left behind.
/// </summary>
public sealed class InputSafetyTests : IDisposable
{
    private readonly string _temp = TestPaths.NewTempDir("weld-cli");

    private string Output => Path.Combine(_temp, "out");

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private static string Model(string name) => Recipes.ExampleModel(name);

    /// <summary>
    /// Writes a copy of single-file model <paramref name="source"/>: <paramref name="edit"/> may change each tensor's
    /// stored bytes in place; <paramref name="extra"/> tensors are appended. config.json is copied.
    /// </summary>
    private static string Variant(string source, string destination, Action<TensorInfo, byte[]>? edit = null,
        params (TensorHeader Header, byte[] Bytes)[] extra)
    {
        Directory.CreateDirectory(destination);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(destination, "config.json"));
        using SafeTensorsFile input = SafeTensorsFile.Open(Path.Combine(source, ShardLayout.SingleFileName));
        var tensors = new List<(TensorHeader Header, byte[] Bytes)>();
        foreach (TensorInfo info in input.Tensors)
        {
            byte[] bytes = input.GetBytes(info, 0, checked((int)info.ByteLength)).ToArray();
            edit?.Invoke(info, bytes);
            tensors.Add((new TensorHeader(info.Name, info.DType, info.Shape), bytes));
        }
        tensors.AddRange(extra);
        using var writer = new SafeTensorsWriter(Path.Combine(destination, ShardLayout.SingleFileName),
            tensors.Select(t => t.Header).ToArray(), metadata: null);
        foreach (var (_, bytes) in tensors) writer.WriteBytes(bytes);
        writer.Complete();
        return destination;
    }

    private string Linear(string first, string second, string extra = "") => Recipes.Write(_temp, $"""
        models:
          - model: {first}
            parameters: {"{weight: 1.0}"}
          - model: {second}
            parameters: {"{weight: 1.0}"}
        merge_method: linear
        dtype: float32
        {extra}
        """);

    // ---- 1. every parameter name is checked against what the method reads ----

    public static TheoryData<string, string, string> MisspeltParameters => new()
    {
        // recipe, misspelt key, what the message must say
        { """
          models:
            - model: {m}/lm-ft-c
              parameters:
                weight: 1.0
                densty: 0.5
          base_model: {m}/lm-base
          merge_method: ties
          """, "densty", "did you mean 'density'?" },
        { """
          models:
            - model: {m}/lm-ft-c
              parameters: {weight: 1.0, density: 0.5}
          base_model: {m}/lm-base
          merge_method: ties
          parameters:
            normalise: true
          """, "normalise", "did you mean 'normalize'?" },
        { """
          models:
            - model: {m}/lm-ft-c
              parameters: {weight: 1.0}
          base_model: {m}/lm-base
          merge_method: task_arithmetic
          parameters:
            lamda: 0.5
          """, "lamda", "did you mean 'lambda'?" },
        { """
          slices:
            - sources:
                - model: {m}/lm-ft-c
                  layer_range: [0, 4]
                  parameters:
                    wieght: 0.5
                - model: {m}/lm-ft-python
                  layer_range: [0, 4]
              parameters:
                weight: 0.5
          merge_method: linear
          """, "wieght", "did you mean 'weight'?" },
        { """
          slices:
            - sources:
                - model: {m}/lm-ft-c
                  layer_range: [0, 4]
                - model: {m}/lm-ft-python
                  layer_range: [0, 4]
              parameters:
                tt: 0.5
          base_model: {m}/lm-ft-c
          merge_method: slerp
          """, "tt", "did you mean 't'?" },
        { """
          models:
            - model: {m}/lm-ft-c
            - model: {m}/lm-ft-python
          merge_method: model_stock
          base_model: {m}/lm-base
          parameters:
            weight: 1.0
          """, "weight", "merge_method model_stock does not read parameter 'weight'" },
        { """
          models:
            - model: {m}/lm-ft-c
              parameters:
                weight: 1.0
                normalize: false
            - model: {m}/lm-ft-python
              parameters: {weight: 1.0}
          merge_method: linear
          """, "normalize", "is one value for the whole merge, not per model" },
    };

    [Theory]
    [MemberData(nameof(MisspeltParameters))]
    public void ParameterTheMethodDoesNotRead_IsAnErrorNamingTheLine(string yaml, string key, string expected)
    {
        string text = yaml.Replace("{m}", Recipes.ExamplesFolder + "/models", StringComparison.Ordinal);
        string recipe = Recipes.Write(_temp, text);
        int line = Recipes.LineOf(text, key + ":");

        CliResult result = WeldCli.Run("merge", recipe, "-o", Output);

        CliAssert.InputError(result, $"{recipe}:{line}:", expected);
        CliAssert.NoOutputLeft(Output);
        // --dry-run validates the same way
        CliAssert.InputError(WeldCli.Run("merge", recipe, "--dry-run"), $"{recipe}:{line}:", expected);
    }

    [Theory]
    [InlineData("1e400")]
    [InlineData("-.inf")]
    public void InfiniteParameterValue_IsARecipeError(string weight)
    {
        string text = $"""
            models:
              - model: {Model("lm-base")}
                parameters: {"{"}weight: {weight}{"}"}
              - model: {Model("lm-ft-c")}
                parameters: {"{weight: 1}"}
            merge_method: linear
            """;
        string recipe = Recipes.Write(_temp, text);
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output, "-q"), $"{recipe}:3:", "not a finite number");
        CliAssert.NoOutputLeft(Output);
    }

    [Fact]
    public void EveryExample_PassesTheParameterCheck()
    {
        foreach (string name in Recipes.ExampleNames())
            CliAssert.Succeeded(WeldCli.Run("merge", Path.Combine(Recipes.ExamplesFolder, name), "--dry-run"));
    }

    // ---- name and chat_template ----

    private string WithTokenizer(string model, string folder, string? chatTemplate)
    {
        string copy = ModelFiles.Copy(Model(model), Path.Combine(_temp, folder));
        var config = new JsonObject { ["tokenizer_class"] = "PreTrainedTokenizerFast", ["model_max_length"] = 4096 };
        if (chatTemplate is not null) config["chat_template"] = chatTemplate;
        File.WriteAllText(Path.Combine(copy, "tokenizer_config.json"), config.ToJsonString());
        File.WriteAllText(Path.Combine(copy, "tokenizer.json"), "{\"version\": \"1.0\"}");
        return copy;
    }

    private static JsonObject TokenizerConfig(string folder) =>
        (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "tokenizer_config.json")))!;

    [Fact]
    public void ChatTemplate_ByName_IsWrittenIntoTheOutputTokenizerConfig_AndNameIsAccepted()
    {
        string a = WithTokenizer("lm-ft-c", "a", "{{ original }}");
        string b = WithTokenizer("lm-ft-python", "b", null);
        File.WriteAllText(Path.Combine(a, "chat_template.jinja"), "{{ a file template that would win in transformers }}");

        CliAssert.Succeeded(WeldCli.Run("merge", Linear(a, b, "name: my-merge\nchat_template: chatml"), "-o", Output, "-q"));

        JsonObject config = TokenizerConfig(Output);
        string template = config["chat_template"]!.GetValue<string>();
        Assert.Contains("<|im_start|>", template, StringComparison.Ordinal);
        Assert.Equal(4096, config["model_max_length"]!.GetValue<int>()); // the rest of the file is kept
        Assert.False(File.Exists(Path.Combine(Output, "chat_template.jinja")), "a copied chat_template.jinja would override the recipe's");
    }

    [Fact]
    public void ChatTemplate_Auto_TakesTheTemplateMostModelsUse_AndLiteralTextIsTakenAsIs()
    {
        const string common = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
        string a = WithTokenizer("lm-ft-c", "a", "{% for m in messages %}{{ 'only a' }}{% endfor %}");
        string b = WithTokenizer("lm-ft-python", "b", common);
        string c = WithTokenizer("lm-ft-prose", "c", "  " + common + "\n");
        string recipe = Recipes.Write(_temp, $"""
            models:
              - model: {a}
              - model: {b}
              - model: {c}
            merge_method: model_stock
            base_model: {a}
            chat_template: auto
            """);

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "-q"));
        Assert.Equal(common, TokenizerConfig(Output)["chat_template"]!.GetValue<string>());

        string literal = Path.Combine(_temp, "literal");
        CliAssert.Succeeded(WeldCli.Run("merge", Linear(a, b, "chat_template: \"{{ messages[0]['content'] }} literal\""), "-o", literal, "-q"));
        Assert.Equal("{{ messages[0]['content'] }} literal", TokenizerConfig(literal)["chat_template"]!.GetValue<string>());
    }

    [Fact]
    public void ChatTemplate_ThatIsNeitherANameNorATemplate_IsARecipeError()
    {
        string recipe = Linear(Model("lm-ft-c"), Model("lm-ft-python"), "chat_template: chatlm");
        CliAssert.InputError(WeldCli.Run("merge", recipe, "-o", Output), $"{recipe}:{Recipes.LineOf(File.ReadAllText(recipe), "chat_template")}:",
            "did you mean 'chatml'?");
        CliAssert.NoOutputLeft(Output);
    }

    // ---- 2. NaN / Inf in an input ----

    private const string Poisoned = "model.layers.1.mlp.up_proj.weight";

    private string WithNonFinite(ushort bf16Bits, string folder) =>
        Variant(Model("lm-ft-c"), Path.Combine(_temp, folder), (info, bytes) =>
        {
            Assert.Equal(DType.BF16, info.DType);
            if (info.Name == Poisoned) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * 37), bf16Bits);
        });

    [Theory]
    [InlineData((ushort)0x7FC0, "NaN", "linear")]        // fused elementwise path
    [InlineData((ushort)0xFF80, "an infinity", "ties")] // plain path (whole tensors)
    public void NonFiniteInput_IsAnErrorNamingFileAndTensor_UnlessAllowed(ushort bits, string what, string method)
    {
        string bad = WithNonFinite(bits, "bad");
        string parameters = method == "ties" ? "{weight: 1.0, density: 0.5}" : "{weight: 1.0}";
        string recipe = Recipes.Write(_temp, $"""
            models:
              - model: {bad}
                parameters: {parameters}
              - model: {Model("lm-ft-python")}
                parameters: {parameters}
            {(method == "ties" ? "base_model: " + Model("lm-base") : "")}
            merge_method: {method}
            """);

        CliResult refused = WeldCli.Run("merge", recipe, "-o", Output, "-q");

        CliAssert.InputError(refused, Path.Combine(bad, "model.safetensors"), Poisoned, what, "element 37", "--allow-non-finite");
        CliAssert.NoOutputLeft(Output);

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", Output, "-q", "--allow-non-finite"));
        using ModelFolder merged = ModelFolder.Open(Output);
        float value = ModelFiles.Read(merged, Poisoned)[37];
        Assert.False(float.IsFinite(value), $"element 37 is {value}: the non-finite input was not merged through");
    }

    // ---- 3. integer tensors: copied when identical, refused when not ----

    private static (TensorHeader, byte[]) PositionIds(long shift)
    {
        var bytes = new byte[16 * 8];
        for (int i = 0; i < 16; i++) BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8 * i), i + shift);
        return (new TensorHeader("model.position_ids", DType.I64, [1, 16]), bytes);
    }

    [Fact]
    public void IntegerTensor_IsCopiedUnchangedWhenAllModelsAgree_AndRefusedWhenTheyDiffer()
    {
        string a = Variant(Model("lm-ft-c"), Path.Combine(_temp, "a"), extra: PositionIds(0));
        string b = Variant(Model("lm-ft-python"), Path.Combine(_temp, "b"), extra: PositionIds(0));
        // out_dtype bfloat16 must not touch it either
        CliAssert.Succeeded(WeldCli.Run("merge", Linear(a, b, "out_dtype: bfloat16"), "-o", Output, "-q"));
        using (SafeTensorsFile merged = SafeTensorsFile.Open(Path.Combine(Output, "model.safetensors")))
        {
            TensorInfo ids = merged.GetTensor("model.position_ids");
            Assert.Equal(DType.I64, ids.DType);
            Assert.Equal(PositionIds(0).Item2, merged.GetBytes(ids, 0, (int)ids.ByteLength).ToArray());
            Assert.Equal(DType.BF16, merged.GetTensor(Poisoned).DType);
        }

        // the plan says so, for TIES (a streaming method) too
        string tiesRecipe = Recipes.Write(_temp, $"""
            models:
              - model: {a}
                parameters: {"{weight: 1.0, density: 0.5}"}
            base_model: {b}
            merge_method: ties
            """, "ties.yml");
        CliResult plan = WeldCli.Run("merge", tiesRecipe, "--dry-run");
        CliAssert.Succeeded(plan);
        Assert.Contains("model.position_ids [1, 16] I64 <-  copied unchanged from", plan.Stdout, StringComparison.Ordinal);

        string c = Variant(Model("lm-ft-python"), Path.Combine(_temp, "c"), extra: PositionIds(1));
        string other = Path.Combine(_temp, "other");
        CliAssert.InputError(WeldCli.Run("merge", Linear(a, c), "-o", other), "model.position_ids", "I64", a, c);
        CliAssert.NoOutputLeft(other);
    }

    // ---- 4. malformed files and recipes: exit 1, one line ----

    [Fact]
    public void SafetensorsHeaderWithInvalidUtf8_IsOneLineNamingTheFile()
    {
        string model = ModelFiles.Copy(Model("lm-ft-c"), Path.Combine(_temp, "utf8"));
        string file = Path.Combine(model, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(file);
        int at = Encoding.ASCII.GetString(bytes, 8, 200).IndexOf("lm_head", StringComparison.Ordinal) + 8;
        bytes[at] = 0xC3; // a lead byte followed by 'm': not UTF-8
        bytes[at + 1] = 0x28;
        File.WriteAllBytes(file, bytes);

        CliResult result = WeldCli.Run("merge", Linear(model, Model("lm-ft-python")), "-o", Output);

        CliAssert.InputError(result, file);
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
        CliAssert.NoOutputLeft(Output);
        CliAssert.InputError(WeldCli.Run("inspect", file), file);
    }

    [Theory]
    [InlineData("models: [unclosed\nmerge_method: linear\n", "recipe.yml:")]
    [InlineData("models:\n  - model: a\n\tparameters: {}\nmerge_method: linear\n", "recipe.yml:")]
    [InlineData("merge_method: linear\nmodels:\n  - model: x\n    parameters: {weight: [1, {a: b}]}\n", "recipe.yml:4:")]
    public void BrokenYaml_IsOneLineNamingTheRecipeLine(string yaml, string expected)
    {
        CliResult result = WeldCli.Run("merge", Recipes.Write(_temp, yaml), "-o", Output);
        CliAssert.InputError(result, expected);
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void ModelWithBrokenConfigJsonOrIndex_IsOneLineNamingTheFile()
    {
        string model = ModelFiles.Copy(Model("lm-ft-c"), Path.Combine(_temp, "config"));
        File.WriteAllText(Path.Combine(model, "config.json"), "{\"num_hidden_layers\": 4,");
        CliResult result = WeldCli.Run("merge", Linear(model, Model("lm-ft-python")), "-o", Output);
        CliAssert.InputError(result, Path.Combine(model, "config.json"));
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));

        string sharded = ModelFiles.Copy(Model("lm-ft-c"), Path.Combine(_temp, "index"));
        File.WriteAllText(Path.Combine(sharded, "model.safetensors.index.json"), "{\"weight_map\": [1, 2]}");
        File.Move(Path.Combine(sharded, "model.safetensors"), Path.Combine(sharded, "model-00001-of-00001.safetensors"));
        result = WeldCli.Run("merge", Linear(sharded, Model("lm-ft-python")), "-o", Output);
        CliAssert.InputError(result, "model.safetensors.index.json");
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
    }

    // ---- 5. an input truncated while the merge reads it ----

    [Theory]
    [InlineData("linear")] // fused tiles
    [InlineData("ties")]   // whole tensors through the loader
    public void InputTruncatedMidMerge_IsAnErrorNamingTheFile_NotACrash(string method)
    {
        string model = ModelFiles.Copy(Model("lm-ft-c"), Path.Combine(_temp, "shrinking"));
        string file = Path.Combine(model, "model.safetensors");
        const string victim = "model.layers.2.mlp.up_proj.weight";
        int truncations = 0, readsBefore = 0;
        string recipe = Recipes.Write(_temp, $"""
            models:
              - model: {model}
                parameters: {(method == "ties" ? "{weight: 1.0, density: 0.5}" : "{weight: 1.0}")}
              - model: {Model("lm-ft-python")}
                parameters: {(method == "ties" ? "{weight: 1.0, density: 0.5}" : "{weight: 1.0}")}
            {(method == "ties" ? "base_model: " + Model("lm-base") : "")}
            merge_method: {method}
            """);
        // The seam runs before every positional read: when the merge first reaches the victim tensor (other tensors of
        // this file have been read already), the file is cut to a tenth of its length, as a concurrent writer would.
        SafeTensorsFile.BeforeRead = (f, tensor) =>
        {
            if (f.FilePath != file) return;
            if (tensor.Name != victim) { Interlocked.Increment(ref readsBefore); return; }
            if (Interlocked.Exchange(ref truncations, 1) == 0)
                using (var stream = new FileStream(file, FileMode.Open, FileAccess.Write, FileShare.ReadWrite)) stream.SetLength(stream.Length / 10);
        };
        CliResult result;
        try
        {
            result = WeldCli.Run("merge", recipe, "-o", Output, "-j", "1", "-q");
        }
        finally
        {
            SafeTensorsFile.BeforeRead = null;
        }

        Assert.Equal(1, truncations);
        Assert.True(readsBefore > 0, "the truncation did not happen mid-merge");
        CliAssert.InputError(result, file, "truncated or replaced while Weld read it");
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
        CliAssert.NoOutputLeft(Output);
    }
}
