using System.Text.Json;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>weld inspect</c> on the zoo's sharded F16 model and its LoRA adapter, as a table and as JSON.</summary>
public sealed class InspectTests
{
    private static readonly string[] s_shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"];

    [Fact]
    public void Table_ListsEveryTensorBothShardsAndTheParameterCount()
    {
        string model = TestPaths.Model("lm-ft-c-sharded");
        CliResult result = WeldCli.Run("inspect", model);

        CliAssert.Succeeded(result);
        Assert.Equal("", result.Stderr);
        foreach (string shard in s_shards) Assert.Contains(shard, result.Stdout, StringComparison.Ordinal);
        Assert.Contains("parameters: 853,120", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("39 in 2 shard(s)", result.Stdout, StringComparison.Ordinal);
        foreach ((string tensor, string shard) in IndexWeightMap(model))
        {
            // One table row per tensor, naming its shard.
            string row = Assert.Single(result.Stdout.Split('\n'), l => l.TrimStart().StartsWith(tensor + " ", StringComparison.Ordinal));
            Assert.Contains(" F16 ", row, StringComparison.Ordinal);
            Assert.Contains(shard, row, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Json_DescribesTheShardedF16Model()
    {
        string model = TestPaths.Model("lm-ft-c-sharded");
        CliResult result = WeldCli.Run("inspect", model, "--json");

        CliAssert.Succeeded(result);
        using JsonDocument json = JsonDocument.Parse(result.Stdout);
        JsonElement root = json.RootElement;
        Assert.Equal("model", root.GetProperty("kind").GetString());
        Assert.Equal(39, root.GetProperty("tensor_count").GetInt32());
        Assert.Equal(853_120, root.GetProperty("parameter_count").GetInt64());
        Assert.Equal(1_706_240, root.GetProperty("total_bytes").GetInt64());
        Assert.Equal(s_shards, root.GetProperty("shards").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("float16", root.GetProperty("config").GetProperty("torch_dtype").GetString());
        Assert.Equal(4, root.GetProperty("config").GetProperty("num_hidden_layers").GetInt32());

        Dictionary<string, string> weightMap = IndexWeightMap(model);
        JsonElement[] tensors = root.GetProperty("tensors").EnumerateArray().ToArray();
        Assert.Equal(39, tensors.Length);
        long elements = 0;
        foreach (JsonElement tensor in tensors)
        {
            string name = tensor.GetProperty("name").GetString()!;
            Assert.Equal("F16", tensor.GetProperty("dtype").GetString());
            Assert.Equal(weightMap[name], tensor.GetProperty("shard").GetString());
            long count = tensor.GetProperty("shape").EnumerateArray().Aggregate(1L, (p, d) => p * d.GetInt64());
            Assert.Equal(count * 2, tensor.GetProperty("bytes").GetInt64());
            elements += count;
        }

        Assert.Equal(853_120, elements);
        Assert.Equal(weightMap.Keys.Order(StringComparer.Ordinal), tensors.Select(t => t.GetProperty("name").GetString()!).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Json_DescribesTheLoraAdapter()
    {
        string adapter = TestPaths.Model("lm-lora-python");
        CliResult result = WeldCli.Run("inspect", adapter, "--json");

        CliAssert.Succeeded(result);
        using JsonDocument json = JsonDocument.Parse(result.Stdout);
        JsonElement root = json.RootElement;
        Assert.Equal("peft-adapter", root.GetProperty("kind").GetString());
        // r = 8 on q, k, v, o, gate, up, down of 4 layers: A [r, in] and B [out, r] each.
        (int In, int Out)[] modules = [(128, 128), (128, 64), (128, 64), (128, 128), (128, 384), (128, 384), (384, 128)];
        long expectedParameters = 4 * modules.Sum(m => 8L * m.In + 8L * m.Out);
        Assert.Equal(4 * 7 * 2, root.GetProperty("tensor_count").GetInt32());
        Assert.Equal(expectedParameters, root.GetProperty("parameter_count").GetInt64());
        Assert.Equal(expectedParameters * 4, root.GetProperty("total_bytes").GetInt64());
        Assert.Equal(["adapter_model.safetensors"], root.GetProperty("shards").EnumerateArray().Select(e => e.GetString()!));
        foreach (JsonElement tensor in root.GetProperty("tensors").EnumerateArray())
        {
            string name = tensor.GetProperty("name").GetString()!;
            Assert.StartsWith("base_model.model.model.layers.", name, StringComparison.Ordinal);
            Assert.True(name.EndsWith(".lora_A.weight", StringComparison.Ordinal) || name.EndsWith(".lora_B.weight", StringComparison.Ordinal), name);
            Assert.Equal("F32", tensor.GetProperty("dtype").GetString());
        }

        CliResult table = WeldCli.Run("inspect", adapter);
        CliAssert.Succeeded(table);
        Assert.Contains("(PEFT adapter)", table.Stdout, StringComparison.Ordinal);
        Assert.Contains($"parameters: {expectedParameters:N0}", table.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void SingleSafetensorsFile_CanBeInspected()
    {
        string file = Path.Combine(Recipes.ExampleModel("lm-base"), "model.safetensors");
        CliResult result = WeldCli.Run("inspect", file, "--json");

        CliAssert.Succeeded(result);
        using JsonDocument json = JsonDocument.Parse(result.Stdout);
        Assert.Equal(39, json.RootElement.GetProperty("tensor_count").GetInt32());
        Assert.Equal(["model.safetensors"], json.RootElement.GetProperty("shards").EnumerateArray().Select(e => e.GetString()!));
        Assert.All(json.RootElement.GetProperty("tensors").EnumerateArray(), t => Assert.Equal("BF16", t.GetProperty("dtype").GetString()));
    }

    /// <summary>The model's <c>model.safetensors.index.json</c> weight map, read as plain JSON.</summary>
    private static Dictionary<string, string> IndexWeightMap(string model)
    {
        using JsonDocument index = JsonDocument.Parse(File.ReadAllText(Path.Combine(model, "model.safetensors.index.json")));
        return index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }
}
