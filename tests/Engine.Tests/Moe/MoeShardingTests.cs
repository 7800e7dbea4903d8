using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Moe;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Moe;

/// <summary>
/// <c>weld moe</c> and <c>weld moe-compress</c> outputs in size-limited shards (<see cref="ShardedTensorWriter"/>):
/// the same tensors, byte for byte, as the single-file output, with Hugging Face's index.
/// </summary>
public sealed class MoeShardingTests
{
    private static MoeConfig Config(string folder) => MoeConfig.Parse($"""
        base_model: '{TestPaths.Model("lm-base")}'
        gate_mode: hidden
        experts_per_token: 1
        experts:
          - source_model: '{TestPaths.Model("lm-ft-c")}'
            positive_prompts: ["#include <stdio.h>\n"]
          - source_model: '{TestPaths.Model("lm-ft-python")}'
            positive_prompts: ["import os\n"]
        """, Path.Combine(folder, "moe.yml"));

    /// <summary>Every tensor of <paramref name="a"/> and <paramref name="b"/> has the same name, dtype, shape and bytes.</summary>
    private static void AssertSameTensors(string a, string b)
    {
        using var x = ModelFolder.Open(a);
        using var y = ModelFolder.Open(b);
        Assert.Equal(x.TensorNames.Order(StringComparer.Ordinal), y.TensorNames.Order(StringComparer.Ordinal));
        foreach (string name in x.TensorNames)
        {
            ModelTensor s = x.GetTensor(name), t = y.GetTensor(name);
            Assert.Equal(s.DType, t.DType);
            Assert.Equal(s.Shape, t.Shape);
            Assert.True(s.File.GetBytes(s.Info, 0, (int)s.Info.ByteLength).SequenceEqual(t.File.GetBytes(t.Info, 0, (int)t.Info.ByteLength)), name);
        }
    }

    private static void AssertShardedWithin(string folder, long maxShardBytes, int minimumShards)
    {
        string[] files = Directory.GetFiles(folder, "*.safetensors").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;
        Assert.True(files.Length >= minimumShards, $"{files.Length} shard(s)");
        Assert.Equal(Enumerable.Range(1, files.Length).Select(i => ShardLayout.ShardName(i, files.Length)), files);
        Assert.DoesNotContain(ShardLayout.SingleFileName, files);
        ShardIndexContents index = ShardIndex.Read(Path.Combine(folder, ShardIndex.FileName));
        Assert.Equal(files, index.WeightMap.Values.Distinct().Order(StringComparer.Ordinal));
        long total = 0;
        foreach (string file in files)
        {
            using SafeTensorsFile shard = SafeTensorsFile.Open(Path.Combine(folder, file));
            long data = shard.Tensors.Sum(t => t.ByteLength);
            Assert.True(data <= maxShardBytes || shard.Tensors.Count == 1, $"{file}: {data} bytes");
            foreach (TensorInfo tensor in shard.Tensors) Assert.Equal(file, index.WeightMap[tensor.Name]);
            total += data;
        }

        Assert.Equal(total, index.TotalSize);
    }

    [Fact]
    public void A_sharded_moe_holds_the_single_file_moes_bytes_and_scores_the_same()
    {
        string folder = TestPaths.NewTempDir();
        string single = Path.Combine(folder, "single"), sharded = Path.Combine(folder, "sharded");
        MoeBuildResult one = MoeBuilder.Build(Config(folder), single, false, false, seed: 0);
        Assert.Single(one.Shards);
        Assert.Equal([ShardLayout.SingleFileName], Directory.GetFiles(single, "*.safetensors").Select(Path.GetFileName));
        Assert.False(File.Exists(Path.Combine(single, ShardIndex.FileName)));

        const long Limit = 300_000;
        MoeBuildResult many = MoeBuilder.Build(Config(folder), sharded, false, false, seed: 0, maxShardBytes: Limit);
        Assert.True(many.Shards.Count > 1);
        Assert.Equal(one.OutputBytes, many.OutputBytes);
        AssertShardedWithin(sharded, Limit, many.Shards.Count);
        AssertSameTensors(single, sharded);
        Assert.Equal(File.ReadAllText(Path.Combine(single, "config.json")), File.ReadAllText(Path.Combine(sharded, "config.json")));

        // A dry run plans the same shards and writes nothing.
        string dry = Path.Combine(folder, "dry");
        Assert.Equal(many.Shards.Select(s => s.FileName), MoeBuilder.Build(Config(folder), dry, false, true, 0, maxShardBytes: Limit).Shards.Select(s => s.FileName));
        Assert.False(Directory.Exists(dry));

        int[] tokens = "int main(void) { return 0; }\n".Select(c => (int)c).ToArray();
        var a = new double[1];
        var b = new double[1];
        using (var x = ModelFolder.Open(single)) LlamaModel.Load(x).ScoreWindows(tokens, 1, tokens.Length, a);
        using (var y = ModelFolder.Open(sharded)) LlamaModel.Load(y).ScoreWindows(tokens, 1, tokens.Length, b);
        Assert.Equal(a[0], b[0]);
    }

    [Fact]
    public void A_compressed_moe_can_be_sharded_and_holds_the_single_file_bytes()
    {
        string folder = TestPaths.NewTempDir();
        string moe = Path.Combine(folder, "moe");
        MoeBuilder.Build(Config(folder), moe, false, false, seed: 0);
        string text = Path.Combine(TestPaths.SharedModels, "eval", "c.txt");
        string single = Path.Combine(folder, "k1"), sharded = Path.Combine(folder, "k1-sharded");
        MoeCompressor.Compress(moe, single, new MoeCompressionSettings(1, [text], Window: 64, Bytes: 2048, Skip: 32768));
        MoeCompressor.Compress(moe, sharded, new MoeCompressionSettings(1, [text], Window: 64, Bytes: 2048, Skip: 32768, MaxShardBytes: 200_000));
        AssertShardedWithin(sharded, 200_000, 2);
        AssertSameTensors(single, sharded);

        // A sharded input compresses to the same bytes too.
        string fromSharded = Path.Combine(folder, "k1-from-sharded");
        string shardedMoe = Path.Combine(folder, "moe-sharded");
        MoeBuilder.Build(Config(folder), shardedMoe, false, false, seed: 0, maxShardBytes: 250_000);
        MoeCompressor.Compress(shardedMoe, fromSharded, new MoeCompressionSettings(1, [text], Window: 64, Bytes: 2048, Skip: 32768));
        AssertSameTensors(single, fromSharded);
        Assert.False(File.Exists(Path.Combine(fromSharded, ShardIndex.FileName))); // its output fits one file
    }

    [Fact]
    public void The_sharded_writer_refuses_tensors_out_of_plan_order_and_an_unfinished_output()
    {
        string folder = TestPaths.NewTempDir();
        TensorHeader[] headers = [new("a", DType.F32, [100]), new("b", DType.F32, [100]), new("c", DType.F32, [100])];
        using (var writer = new ShardedTensorWriter(folder, headers, 400))
        {
            Assert.Equal(3, writer.Shards.Count);
            writer.For("a").WriteFloat32(new float[100]);
            Assert.Contains("plan order", Assert.Throws<WeldException>(() => writer.For("c")).Message);
            Assert.Contains("not in the planned output", Assert.Throws<WeldException>(() => writer.For("d")).Message);
            writer.For("b").WriteFloat32(new float[100]);
            Assert.Contains("not written", Assert.Throws<WeldException>(writer.Complete).Message);
        }

        Assert.False(File.Exists(Path.Combine(folder, ShardIndex.FileName)));
    }
}
