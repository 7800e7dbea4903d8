using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.SafeTensors;

/// <summary>
/// The O_DIRECT sink writes exactly the bytes of the buffered one (block boundaries, odd tails, straddling values, the
/// ring of blocks wrapping around), and both report the checksum of the file as it lies on disk.
/// </summary>
public sealed class DirectIoWriterTests
{
    [Fact]
    public void Direct_and_buffered_writers_give_identical_files()
    {
        var random = new Random(Random.Shared.Next());
        // An odd-sized U8 tensor puts the next tensors at odd offsets, so converted values straddle the direct sink's
        // 4 MiB blocks; sizes cross several blocks and end in a tail that is not a multiple of 4 KiB.
        var headers = new List<TensorHeader>
        {
            new("odd.bytes", DType.U8, [4_194_297]),
            new("a.bf16", DType.BF16, [3_000_001]),
            new("b.f32", DType.F32, [1_048_579]),
            new("c.f16", DType.F16, [777]),
            new("d.fp8", DType.F8_E4M3, [5]),
            new("e.f32", DType.F32, [2_500_003]), // past 24 MiB: the direct sink's ring of four 4 MiB blocks wraps
        };
        byte[] oddBytes = new byte[4_194_297];
        random.NextBytes(oddBytes);
        var floats = headers.Skip(1).Select(h => Enumerable.Range(0, (int)h.Shape[0]).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray()).ToList();

        string dir = TestPaths.NewTempDir();
        string Write(string name, bool direct)
        {
            string checksum;
            string path = Path.Combine(dir, name);
            using var writer = new SafeTensorsWriter(path, headers, null, direct);
            writer.WriteBytes(oddBytes);
            foreach (float[] values in floats)
                for (int start = 0; start < values.Length; start += 100_003) // several calls per tensor
                    writer.WriteFloat32(values.AsSpan(start, Math.Min(100_003, values.Length - start)));
            writer.Complete();
            checksum = writer.Checksum!;
            Assert.Equal(ShardChecksum.ComputeFile(path, checksum), checksum);
            return path;
        }

        byte[] buffered = File.ReadAllBytes(Write("buffered.safetensors", direct: false));
        byte[] direct = File.ReadAllBytes(Write("direct.safetensors", direct: true));
        Assert.Equal(buffered.Length, direct.Length);
        Assert.True(buffered.AsSpan().SequenceEqual(direct));
    }

    [Fact]
    public void The_direct_sink_is_used_where_the_file_system_allows_it_and_pads_nothing_into_the_file()
    {
        string path = Path.Combine(TestPaths.NewTempDir(), "probe.bin");
        using ShardFileSink sink = ShardFileSink.Create(path, directIo: true);
        if (OperatingSystem.IsLinux() && !IsTmpfs(path))
            Assert.IsType<DirectShardFileSink>(sink); // ext4/xfs/btrfs/overlayfs accept O_DIRECT
        byte[] data = new byte[10_000];
        new Random(3).NextBytes(data);
        sink.Write(data);
        sink.Complete();
        Assert.Equal(data, File.ReadAllBytes(path));
    }

    private static bool IsTmpfs(string path)
    {
        // /proc/mounts: the longest mount point that prefixes the path decides the file system type.
        string best = "", type = "";
        foreach (string line in File.ReadLines("/proc/mounts"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length > 2 && path.StartsWith(fields[1], StringComparison.Ordinal) && fields[1].Length > best.Length)
                (best, type) = (fields[1], fields[2]);
        }
        return type is "tmpfs" or "ramfs" or "9p" or "fuse" or "nfs" or "nfs4";
    }
}
