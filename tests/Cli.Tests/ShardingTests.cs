using System.Text.Json;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary><c>--out-shard-size</c>: Hugging Face shard names, a complete index, and the same tensor values as one file.</summary>
public sealed class ShardingTests
{
    private const long ShardLimit = 500_000; // "500K" in mergekit's parse_kmb: decimal thousands

    [Fact]
    public void SmallShardSize_WritesShardsAndAnIndexCoveringEveryTensor()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample("linear-soup.yml", temp);
        string sharded = Path.Combine(temp, "sharded");
        string single = Path.Combine(temp, "single");

        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", sharded, "--out-shard-size", "500K"));
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", single));

        string[] shardFiles = Directory.EnumerateFiles(sharded, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        int n = shardFiles.Length;
        Assert.True(n >= 4, $"1,706,240 bytes in shards of at most 500,000 need at least 4 files, got {n}");
        Assert.Equal(Enumerable.Range(1, n).Select(i => $"model-{i:D5}-of-{n:D5}.safetensors"), shardFiles);
        Assert.False(File.Exists(Path.Combine(sharded, ShardLayout.SingleFileName)));

        // The index, read as plain JSON: every tensor of every shard is mapped to the shard that holds it.
        using JsonDocument index = JsonDocument.Parse(File.ReadAllText(Path.Combine(sharded, ShardIndex.FileName)));
        var weightMap = index.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long totalBytes = 0;
        var shardBytes = new List<long>();
        var firstTensorBytes = new List<long>();
        foreach (string shard in shardFiles)
        {
            using SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(sharded, shard));
            Assert.NotEmpty(file.Tensors);
            foreach (TensorInfo tensor in file.Tensors)
            {
                Assert.Equal(shard, weightMap[tensor.Name]);
                Assert.True(seen.Add(tensor.Name));
            }

            Assert.True(file.DataLength <= ShardLimit, $"{shard} holds {file.DataLength} bytes");
            shardBytes.Add(file.DataLength);
            firstTensorBytes.Add(file.Tensors[0].ByteLength);
            totalBytes += file.DataLength;
        }

        Assert.Equal(weightMap.Keys.Order(StringComparer.Ordinal), seen.Order(StringComparer.Ordinal));
        Assert.Equal(39, weightMap.Count);
        Assert.Equal(853_120 * 2, totalBytes);
        Assert.Equal(totalBytes, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        // Greedy filling: a shard was closed only because the next tensor did not fit.
        for (int i = 0; i + 1 < n; i++)
            Assert.True(shardBytes[i] + firstTensorBytes[i + 1] > ShardLimit, $"shard {i + 1} was closed early");

        // The same merge in one file holds the same values.
        Dictionary<string, float[]> one = ModelFiles.ReadAll(single);
        Dictionary<string, float[]> many = ModelFiles.ReadAll(sharded);
        Assert.Equal(one.Keys.Order(StringComparer.Ordinal), many.Keys.Order(StringComparer.Ordinal));
        foreach ((string name, float[] values) in one)
            Assert.Equal(ModelFiles.Bits(values), ModelFiles.Bits(many[name]));
    }

    [Fact]
    public void DryRun_PlansTheSameShardsTheMergeWrites()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample("ties.yml", temp);
        string output = Path.Combine(temp, "out");

        CliResult plan = WeldCli.Run("merge", recipe, "-o", output, "--out-shard-size", "500K", "--dry-run");
        CliAssert.Succeeded(plan);
        CliAssert.NoOutputLeft(output);
        CliAssert.Succeeded(WeldCli.Run("merge", recipe, "-o", output, "--out-shard-size", "500K", "-q"));

        foreach (string shard in Directory.EnumerateFiles(output, "*.safetensors"))
        {
            using SafeTensorsFile file = SafeTensorsFile.Open(shard);
            string line = $"  {Path.GetFileName(shard)}: {file.Tensors.Count} tensors, {file.DataLength:N0} bytes";
            Assert.Contains(line + "\n", plan.Stdout.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        }

        Assert.Equal(Directory.EnumerateFiles(output, "*.safetensors").Count(),
            plan.Stdout.Split('\n').Count(l => l.StartsWith("  model-", StringComparison.Ordinal) && l.Contains(".safetensors: ", StringComparison.Ordinal)));
    }
}
