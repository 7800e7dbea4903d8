using System.Text.Json;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.SafeTensors;

public sealed class ShardingTests
{
    private static TensorHeader Bytes(string name, long count) => new(name, DType.U8, [count]);

    private static string[][] Names(IReadOnlyList<ShardPlan> plans) =>
        plans.Select(p => p.Tensors.Select(t => t.Name).ToArray()).ToArray();

    [Fact]
    public void Plan_IsGreedyInOrder_AtExactBudgets()
    {
        TensorHeader[] tensors = [Bytes("a", 100), Bytes("b", 100), Bytes("c", 50)];
        // A budget equal to the sum of two tensors puts both in one shard.
        Assert.Equal([["a", "b"], ["c"]], Names(ShardLayout.Plan(tensors, 200)));
        Assert.Equal([["a"], ["b", "c"]], Names(ShardLayout.Plan(tensors, 199)));
        Assert.Equal([["a", "b", "c"]], Names(ShardLayout.Plan(tensors, 250)));
        Assert.Equal([["a"], ["b"], ["c"]], Names(ShardLayout.Plan(tensors, 100)));
        // Order is kept even when a later small tensor would fit an earlier shard.
        Assert.Equal([["a"], ["b"], ["c"]], Names(ShardLayout.Plan([Bytes("a", 60), Bytes("b", 60), Bytes("c", 60)], 100)));
    }

    [Fact]
    public void Plan_GivesOversizedTensorsAShardOfTheirOwn()
    {
        TensorHeader[] tensors = [Bytes("a", 10), Bytes("huge", 500), Bytes("b", 10), Bytes("c", 10), Bytes("huge2", 101)];
        IReadOnlyList<ShardPlan> plans = ShardLayout.Plan(tensors, 100);
        Assert.Equal([["a"], ["huge"], ["b", "c"], ["huge2"]], Names(plans));
        Assert.Equal([10L, 500, 20, 101], plans.Select(p => p.DataBytes));
        Assert.Equal(
            ["model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"],
            plans.Select(p => p.FileName));
        Assert.Equal([["huge"]], Names(ShardLayout.Plan([Bytes("huge", 500)], 100)));
    }

    [Fact]
    public void Plan_NamesASingleShardModelSafetensors_AndRefusesNonPositiveBudgets()
    {
        IReadOnlyList<ShardPlan> one = ShardLayout.Plan([Bytes("a", 1), new TensorHeader("w", DType.BF16, [3, 4])], 1_000);
        Assert.Single(one);
        Assert.Equal("model.safetensors", one[0].FileName);
        Assert.Equal(25, one[0].DataBytes);
        Assert.Equal("model-00012-of-00345.safetensors", ShardLayout.ShardName(12, 345));
        Assert.Throws<WeldException>(() => ShardLayout.Plan([Bytes("a", 1)], 0));
    }

    [Fact]
    public void Index_ListsEveryTensorSortedWithTotalSize_OnlyForSeveralShards()
    {
        string dir = TestPaths.NewTempDir();
        TensorHeader[] tensors = [Bytes("z.last", 100), new("a.first", DType.F32, [10]), Bytes("m.mid", 30)];
        IReadOnlyList<ShardPlan> plans = ShardLayout.Plan(tensors, 100);
        ShardIndex.Write(dir, plans);

        string indexPath = Path.Combine(dir, "model.safetensors.index.json");
        string text = File.ReadAllText(indexPath);
        Assert.Contains("\n  \"metadata\"", text); // indented
        using JsonDocument doc = JsonDocument.Parse(text);
        Assert.Equal(170, doc.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        var map = doc.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => (p.Name, p.Value.GetString())).ToList();
        Assert.Equal([("a.first", "model-00002-of-00002.safetensors"), ("m.mid", "model-00002-of-00002.safetensors"),
            ("z.last", "model-00001-of-00002.safetensors")], map);

        ShardIndexContents read = ShardIndex.Read(indexPath);
        Assert.Equal(170, read.TotalSize);
        Assert.Equal(map.Select(m => m.Name), read.Entries.Select(e => e.Key));
        Assert.Equal("model-00001-of-00002.safetensors", read.WeightMap["z.last"]);

        string single = TestPaths.NewTempDir();
        ShardIndex.Write(single, ShardLayout.Plan(tensors, 1_000));
        Assert.Empty(Directory.EnumerateFileSystemEntries(single));
    }

    [Fact]
    public void Index_Read_RefusesMalformedIndexes()
    {
        string dir = TestPaths.NewTempDir();
        string path = Path.Combine(dir, "model.safetensors.index.json");
        File.WriteAllText(path, "{\"weight_map\": ");
        Assert.Contains("not valid JSON", Assert.Throws<InvalidModelFileException>(() => ShardIndex.Read(path)).Message);
        File.WriteAllText(path, "{\"metadata\": {}}");
        Assert.Contains("no 'weight_map'", Assert.Throws<InvalidModelFileException>(() => ShardIndex.Read(path)).Message);
        File.WriteAllText(path, "{\"weight_map\": {\"a\": 3}}");
        Assert.Contains("'a' is not a file name", Assert.Throws<InvalidModelFileException>(() => ShardIndex.Read(path)).Message);
        File.WriteAllText(path, "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}");
        Assert.Contains("'a' more than once", Assert.Throws<InvalidModelFileException>(() => ShardIndex.Read(path)).Message);
        File.WriteAllText(path, "{\"metadata\": {\"total_size\": 12.0}, \"weight_map\": {}}");
        Assert.Equal(12, ShardIndex.Read(path).TotalSize);
    }

    [Fact]
    public void ShardedWrite_IntoOutputFolder_ReadsBackAsAModel()
    {
        string parent = TestPaths.NewTempDir();
        string target = Path.Combine(parent, "merged");
        var random = new Random(3);
        TensorHeader[] tensors = [new("w1", DType.BF16, [64, 32]), new("w2", DType.F16, [64, 32]), new("n", DType.F32, [32]), new("w3", DType.BF16, [100])];
        var values = tensors.ToDictionary(t => t.Name, t => Enumerable.Range(0, (int)t.ElementCount).Select(_ => (float)random.NextDouble()).ToArray());
        IReadOnlyList<ShardPlan> plans = ShardLayout.Plan(tensors, 4096 + 128);
        Assert.Equal(3, plans.Count);

        using (var output = new OutputFolder(target, overwrite: false))
        {
            foreach (ShardPlan plan in plans)
            {
                using var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, plan.FileName), plan.Tensors, null);
                foreach (TensorHeader t in plan.Tensors) writer.WriteFloat32(values[t.Name]);
                writer.Complete();
            }

            ShardIndex.Write(output.WorkPath, plans);
            Assert.False(Directory.Exists(target));
            output.Commit();
        }

        Assert.Equal(["merged"], Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName));
        using ModelFolder model = ModelFolder.Open(target);
        Assert.Equal(["n", "w1", "w2", "w3"], model.TensorNames); // index order (sorted)
        Assert.Equal(tensors.Sum(t => t.ByteLength), model.TotalBytes);
        var n = new float[32];
        model.GetTensor("n").ReadFloat32(0, n);
        Assert.Equal(values["n"], n);
        var w2 = new float[64 * 32];
        model.GetTensor("w2").ReadFloat32(0, w2);
        Assert.Equal(values["w2"].Select(v => (float)(Half)v), w2);
    }

    [Fact]
    public void OutputFolder_ExceptionMidWrite_LeavesNoTargetBehind()
    {
        string parent = TestPaths.NewTempDir();
        string target = Path.Combine(parent, "out");
        void WriteAndFail()
        {
            using var output = new OutputFolder(target, overwrite: false);
            Assert.StartsWith(Path.Combine(parent, ".out.weld-partial-"), output.WorkPath);
            using var writer = new SafeTensorsWriter(Path.Combine(output.WorkPath, "model.safetensors"), [Bytes("a", 1000)], null);
            writer.WriteBytes(new byte[500]);
            throw new InvalidOperationException("injected failure");
        }

        var e = Assert.Throws<InvalidOperationException>(WriteAndFail);
        Assert.Equal("injected failure", e.Message);
        Assert.False(Directory.Exists(target));
        Assert.Empty(Directory.EnumerateFileSystemEntries(parent)); // the partial folder is gone too
    }

    [Fact]
    public void OutputFolder_RefusesAnExistingTarget_UnlessOverwriting()
    {
        string parent = TestPaths.NewTempDir();
        string target = Path.Combine(parent, "out");
        Directory.CreateDirectory(target);
        File.WriteAllText(Path.Combine(target, "old.txt"), "old");

        var e = Assert.Throws<WeldException>(() => new OutputFolder(target, overwrite: false));
        Assert.Contains("already exists", e.Message);
        Assert.Contains(target, e.Message);

        // The target appearing while the work runs is refused at commit too.
        string late = Path.Combine(parent, "late");
        using (var output = new OutputFolder(late, overwrite: false))
        {
            File.WriteAllText(Path.Combine(output.WorkPath, "new.txt"), "new");
            Directory.CreateDirectory(late);
            Assert.Contains("already exists", Assert.Throws<WeldException>(output.Commit).Message);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(late));

        // --overwrite replaces only a folder Weld wrote (its marker) or an empty one, never a foreign folder.
        Assert.Contains("not a folder Weld wrote", Assert.Throws<WeldException>(() => new OutputFolder(target, overwrite: true)).Message);
        OutputFolder.WriteMarker(target);
        using (var output = new OutputFolder(target, overwrite: true))
        {
            File.WriteAllText(Path.Combine(output.WorkPath, "new.txt"), "new");
            Assert.True(File.Exists(Path.Combine(target, "old.txt"))); // untouched until commit
            output.Commit();
        }

        Assert.Equal([OutputFolder.MarkerFileName, "new.txt"], Directory.EnumerateFileSystemEntries(target).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["late", "out"], Directory.EnumerateFileSystemEntries(parent).Select(Path.GetFileName).Order());
    }

    [Theory]
    [InlineData("5B", 5_000_000_000L)]
    [InlineData("5b", 5_000_000_000L)]
    [InlineData("500M", 500_000_000L)]
    [InlineData("500m", 500_000_000L)]
    [InlineData("100K", 100_000L)]
    [InlineData("100k", 100_000L)]
    [InlineData("4096", 4096L)]
    [InlineData(" 2B ", 2_000_000_000L)]
    [InlineData("0", 0L)]
    public void ByteSize_Parse_ReadsMergekitSizes(string text, long expected) => Assert.Equal(expected, ByteSize.Parse(text));

    [Theory]
    [InlineData("")]
    [InlineData("B")]
    [InlineData("1.5B")]
    [InlineData("5G")]
    [InlineData("5GB")]
    [InlineData("-1")]
    [InlineData("abc")]
    [InlineData("1 000")]
    public void ByteSize_Parse_RefusesOtherText(string text)
    {
        var e = Assert.Throws<WeldException>(() => ByteSize.Parse(text));
        Assert.Contains($"'{text}' is not a byte size", e.Message);
        Assert.Contains("K (thousand), M (million) or B (billion)", e.Message);
    }

    [Fact]
    public void ByteSize_Overflow_AndFormatRoundTrip()
    {
        Assert.Contains("too large", Assert.Throws<WeldException>(() => ByteSize.Parse("99999999999B")).Message);
        Assert.Contains("too large", Assert.Throws<WeldException>(() => ByteSize.Parse("99999999999999999999")).Message);
        Assert.Equal("5B", ByteSize.Format(5_000_000_000));
        Assert.Equal("500M", ByteSize.Format(500_000_000));
        Assert.Equal("1500K", ByteSize.Format(1_500_000));
        Assert.Equal("4096", ByteSize.Format(4096));
        Assert.Equal("0", ByteSize.Format(0));
        foreach (long value in new[] { 1L, 999, 1000, 123_456_000, 7_000_000_001, long.MaxValue })
            Assert.Equal(value, ByteSize.Parse(ByteSize.Format(value)));
    }
}
