using System.Text.Json;
using System.Text.Json.Nodes;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Models;

public sealed class ModelFolderTests
{
    public static TheoryData<string> ZooModels()
    {
        var data = new TheoryData<string>();
        foreach (string dir in Directory.EnumerateDirectories(TestPaths.SharedModels).Order())
            if (Path.GetFileName(dir) is not ("data" or "eval")) data.Add(Path.GetFileName(dir));
        return data;
    }

    [Theory]
    [MemberData(nameof(ZooModels))]
    public void ZooModel_OpensWithEveryTensorOfItsFiles(string name)
    {
        string folder = TestPaths.Model(name);
        using ModelFolder model = ModelFolder.Open(folder);
        Assert.Equal(folder, model.Path);

        // Independent view: every .safetensors file of the folder, parsed by the test's raw reader.
        var expected = new Dictionary<string, (RawSafeTensors File, RawSafeTensors.Entry Entry)>();
        foreach (string file in Directory.EnumerateFiles(folder, "*.safetensors"))
        {
            RawSafeTensors raw = RawSafeTensors.Read(file);
            foreach ((string tensor, RawSafeTensors.Entry entry) in raw.Entries) expected.Add(tensor, (raw, entry));
        }

        Assert.Equal(expected.Keys.Order(), model.TensorNames.Order());
        Assert.Equal(model.TensorNames.Count, model.TensorNames.Distinct().Count());
        long bytes = 0, parameters = 0;
        foreach (string tensorName in model.TensorNames)
        {
            Assert.True(model.Contains(tensorName));
            ModelTensor tensor = model.GetTensor(tensorName);
            (RawSafeTensors raw, RawSafeTensors.Entry entry) = expected[tensorName];
            Assert.Equal(entry.DType, DTypes.ToName(tensor.DType));
            Assert.Equal(entry.Shape, tensor.Shape);
            double[] values = raw.Values(tensorName);
            var actual = new float[values.Length];
            tensor.ReadFloat32(0, actual);
            for (int i = 0; i < values.Length; i += 7) Assert.Equal((float)values[i], actual[i]);
            bytes += entry.End - entry.Begin;
            parameters += values.Length;
        }

        Assert.Equal(bytes, model.TotalBytes);
        Assert.Equal(parameters, model.ParameterCount);
        Assert.Equal(name.StartsWith("lm-lora"), model.IsAdapter);
        Assert.Empty(model.SideFiles); // the zoo has no tokenizer files
    }

    [Fact]
    public void LmBase_ConfigAndCounts()
    {
        using ModelFolder model = ModelFolder.Open(TestPaths.Model("lm-base"));
        Assert.NotNull(model.Config);
        Assert.Equal("LlamaForCausalLM", model.Config.Architecture);
        Assert.Equal("llama", model.Config.ModelType);
        Assert.Equal(4, model.Config.NumHiddenLayers);
        Assert.Equal(128, model.Config.HiddenSize);
        Assert.Equal(256, model.Config.VocabSize);
        Assert.Equal("bfloat16", model.Config.TorchDType);
        Assert.False(model.Config.TieWordEmbeddings);
        Assert.Equal(384, (int)model.Config.Raw["intermediate_size"]!);
        Assert.Equal(853_120, model.ParameterCount);
        Assert.Equal(853_120 * 2, model.TotalBytes);
        Assert.Single(model.Files);
        RawSafeTensors raw = RawSafeTensors.Read(Path.Combine(TestPaths.Model("lm-base"), "model.safetensors"));
        Assert.Equal(raw.Entries.OrderBy(e => e.Value.Begin).Select(e => e.Key), model.TensorNames); // file (offset) order
        var e = Assert.Throws<WeldException>(() => model.GetTensor("model.layers.9.mlp.up_proj.weight"));
        Assert.Contains(TestPaths.Model("lm-base"), e.Message);
        Assert.Contains("'model.layers.9.mlp.up_proj.weight'", e.Message);
    }

    [Fact]
    public void ShardedF16Model_FollowsItsIndex_AndMatchesTheBf16Original()
    {
        string folder = TestPaths.Model("lm-ft-c-sharded");
        ShardIndexContents index = ShardIndex.Read(Path.Combine(folder, "model.safetensors.index.json"));
        Assert.Equal(1_706_240, index.TotalSize);

        using ModelFolder sharded = ModelFolder.Open(folder);
        using ModelFolder original = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        Assert.Equal(2, sharded.Files.Count);
        Assert.Equal(index.Entries.Select(e => e.Key), sharded.TensorNames);
        Assert.Equal(index.TotalSize, sharded.TotalBytes);
        Assert.Equal("float16", sharded.Config!.TorchDType);
        Assert.Equal("model-00002-of-00002.safetensors", Path.GetFileName(sharded.GetTensor("lm_head.weight").File.FilePath));
        Assert.Equal("model-00001-of-00002.safetensors", Path.GetFileName(sharded.GetTensor("model.layers.1.mlp.up_proj.weight").File.FilePath));

        // README: the F16 copy differs from the BF16 values in exactly 68 of 853,120 elements.
        int differing = 0;
        foreach (string name in original.TensorNames)
        {
            ModelTensor a = original.GetTensor(name), b = sharded.GetTensor(name);
            Assert.Equal(DType.BF16, a.DType);
            Assert.Equal(DType.F16, b.DType);
            Assert.Equal(a.Shape, b.Shape);
            var x = new float[a.ElementCount];
            var y = new float[b.ElementCount];
            a.ReadFloat32(0, x);
            b.ReadFloat32(0, y);
            for (int i = 0; i < x.Length; i++) differing += x[i] != y[i] ? 1 : 0;
        }

        Assert.Equal(68, differing);
    }

    [Fact]
    public void LoraAdapter_IsF32WithRank8AFactors()
    {
        using ModelFolder adapter = ModelFolder.Open(TestPaths.Model("lm-lora-python"));
        Assert.True(adapter.IsAdapter);
        Assert.Null(adapter.Config);
        Assert.Equal(8, (int)adapter.AdapterConfig!["r"]!);
        Assert.Equal(16, (int)adapter.AdapterConfig["lora_alpha"]!);
        Assert.Equal(4 * 7 * 2, adapter.TensorNames.Count);
        Assert.All(adapter.TensorNames, n => Assert.Equal(DType.F32, adapter.GetTensor(n).DType));
        Assert.Equal([8L, 128L], adapter.GetTensor("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").Shape);
        Assert.Equal([8L, 384L], adapter.GetTensor("base_model.model.model.layers.3.mlp.down_proj.lora_A.weight").Shape);
        Assert.Equal([384L, 8L], adapter.GetTensor("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight").Shape);
        Assert.Equal([64L, 8L], adapter.GetTensor("base_model.model.model.layers.2.self_attn.k_proj.lora_B.weight").Shape);
    }

    [Fact]
    public void SingleFilePath_Opens()
    {
        string path = Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors");
        using ModelFolder model = ModelFolder.Open(path);
        Assert.Equal(path, model.Path);
        Assert.Null(model.Config);
        Assert.Equal([1797L, 64L], model.GetTensor("X").Shape);
        Assert.Equal(DType.I64, model.GetTensor("y").DType);
        var labels = new float[10];
        model.GetTensor("y").ReadFloat32(0, labels);
        Assert.All(labels, v => Assert.InRange(v, 0, 9));
    }

    // ------------------------------------------------------------------ refusals

    private static string CopyModel(string name)
    {
        string dir = Path.Combine(TestPaths.NewTempDir(), name);
        Directory.CreateDirectory(dir);
        foreach (string file in Directory.EnumerateFiles(TestPaths.Model(name)))
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)));
        return dir;
    }

    private static void EditIndex(string folder, Action<JsonObject> edit)
    {
        string path = Path.Combine(folder, "model.safetensors.index.json");
        JsonObject index = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(index["weight_map"]!.AsObject());
        File.WriteAllText(path, index.ToJsonString());
    }

    [Theory]
    [InlineData("pytorch_model.bin")]
    [InlineData("pytorch_model-00001-of-00002.bin")]
    [InlineData("adapter_model.bin")]
    [InlineData("consolidated.pth")]
    [InlineData("model.pt")]
    public void PickleCheckpoints_AreRefusedWithAnExplanation(string fileName)
    {
        string dir = TestPaths.NewTempDir();
        File.WriteAllBytes(Path.Combine(dir, fileName), [0x80, 0x02]);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        var e = Assert.Throws<WeldException>(() => ModelFolder.Open(dir));
        Assert.Contains(fileName, e.Message);
        Assert.Contains("arbitrary code", e.Message);
        Assert.Contains("safe_serialization=True", e.Message);
        Assert.Contains("safetensors.torch.save_file", e.Message);

        e = Assert.Throws<WeldException>(() => ModelFolder.Open(Path.Combine(dir, fileName)));
        Assert.Contains("arbitrary code", e.Message);
    }

    [Fact]
    public void EmptyOrMissingFolders_AreRefused()
    {
        string dir = TestPaths.NewTempDir();
        Assert.Contains("no model found", Assert.Throws<WeldException>(() => ModelFolder.Open(dir)).Message);
        Assert.Contains("no such model folder", Assert.Throws<WeldException>(() => ModelFolder.Open(Path.Combine(dir, "nope"))).Message);
        File.WriteAllBytes(Path.Combine(dir, "adapter_model.safetensors"), File.ReadAllBytes(
            Path.Combine(TestPaths.Model("lm-lora-python"), "adapter_model.safetensors")));
        Assert.Contains("no adapter_config.json", Assert.Throws<WeldException>(() => ModelFolder.Open(dir)).Message);
    }

    [Theory]
    [InlineData("../lm-ft-c/model.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../x.safetensors")]
    [InlineData("..\\x.safetensors")]
    public void IndexShardNames_ThatEscapeTheFolder_AreRefused(string shardName)
    {
        string folder = CopyModel("lm-ft-c-sharded");
        EditIndex(folder, map => map["lm_head.weight"] = shardName);
        var e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Contains($"shard name '{shardName}' (for tensor 'lm_head.weight') points outside the model folder", e.Message);
        Assert.Contains("model.safetensors.index.json", e.Message);
    }

    [Fact]
    public void MissingShard_IsReported()
    {
        string folder = CopyModel("lm-ft-c-sharded");
        File.Delete(Path.Combine(folder, "model-00002-of-00002.safetensors"));
        var e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Contains("shard 'model-00002-of-00002.safetensors'", e.Message);
        Assert.Contains("is missing from the model folder", e.Message);
    }

    [Fact]
    public void IndexAndShardsThatDisagree_AreReported()
    {
        string folder = CopyModel("lm-ft-c-sharded");
        EditIndex(folder, map => map["model.extra.weight"] = "model-00001-of-00002.safetensors");
        var e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Contains("maps tensor 'model.extra.weight' to shard 'model-00001-of-00002.safetensors', which does not contain it", e.Message);

        folder = CopyModel("lm-ft-c-sharded");
        EditIndex(folder, map => map.Remove("model.norm.weight"));
        e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Contains("shard 'model-00002-of-00002.safetensors' contains tensor 'model.norm.weight', which the index does not map to it", e.Message);

        folder = CopyModel("lm-ft-c-sharded");
        EditIndex(folder, map => map["lm_head.weight"] = "model-00001-of-00002.safetensors");
        e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Contains("'lm_head.weight' to shard 'model-00001-of-00002.safetensors', which does not contain it", e.Message);
    }

    [Fact]
    public void CorruptShard_NamesTheShardFile()
    {
        string folder = CopyModel("lm-ft-c-sharded");
        string shard = Path.Combine(folder, "model-00002-of-00002.safetensors");
        using (var stream = new FileStream(shard, FileMode.Open)) stream.SetLength(stream.Length - 10);
        var e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Equal(shard, e.FilePath);
        Assert.Contains("end beyond the data section", e.Message);
    }

    [Fact]
    public void SideFiles_AreListedWhenPresent()
    {
        string folder = CopyModel("lm-base");
        foreach (string side in new[] { "tokenizer.json", "generation_config.json", "chat_template.jinja", "unrelated.txt" })
            File.WriteAllText(Path.Combine(folder, side), "{}");
        using ModelFolder model = ModelFolder.Open(folder);
        Assert.Equal(["tokenizer.json", "generation_config.json", "chat_template.jinja"], model.SideFiles.Select(Path.GetFileName));
        Assert.All(model.SideFiles, f => Assert.True(Path.IsPathFullyQualified(f)));
    }

    [Fact]
    public void MalformedConfig_NamesTheFile()
    {
        string folder = CopyModel("lm-base");
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"architectures\": [\"Llama\"");
        var e = Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder));
        Assert.Equal(Path.Combine(folder, "config.json"), e.FilePath);
        Assert.Contains("not valid JSON", e.Message);

        File.WriteAllText(Path.Combine(folder, "config.json"), "[1]");
        Assert.Contains("must be a JSON object", Assert.Throws<InvalidModelFileException>(() => ModelFolder.Open(folder)).Message);
    }

    [Fact]
    public void ModelConfig_DefaultsAndOddValues()
    {
        ModelConfig config = ModelConfig.Parse("""{"num_hidden_layers": 32.0, "hidden_size": "big", "dtype": "float16"}""");
        Assert.Equal(32, config.NumHiddenLayers);
        Assert.Null(config.HiddenSize);
        Assert.Null(config.Architecture);
        Assert.Null(config.VocabSize);
        Assert.Equal("float16", config.TorchDType);
        Assert.True(config.TieWordEmbeddings); // transformers' PretrainedConfig default
        Assert.False(ModelConfig.Parse("""{"tie_word_embeddings": false}""").TieWordEmbeddings);
        Assert.Throws<InvalidModelFileException>(() => ModelConfig.Parse("nope"));
    }

    [Fact]
    public void Dispose_ClosesEveryShard()
    {
        ModelFolder model = ModelFolder.Open(TestPaths.Model("lm-ft-c-sharded"));
        ModelTensor tensor = model.GetTensor("lm_head.weight");
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => tensor.ReadFloat32(0, new float[1]));
        Assert.All(model.Files, f => Assert.Throws<ObjectDisposedException>(() => f.GetBytes(f.Tensors[0], 0, 1).Length));
    }
}
