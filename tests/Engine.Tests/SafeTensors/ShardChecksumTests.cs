using System.Security.Cryptography;
using System.Text;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Xunit;

namespace Weld.Engine.Tests.SafeTensors;

/// <summary>The shard checksum (CRC32C) and the default memory limit.</summary>
public sealed class ShardChecksumTests
{
    [Fact]
    public void Crc32c_matches_the_standard_check_value()
    {
        // The CRC catalogue's check value for CRC-32C (iSCSI): "123456789" -> 0xE3069283.
        Assert.Equal(0xE3069283u, ShardChecksum.Compute(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0xE3069283u, ShardChecksum.ComputeWithTable(Encoding.ASCII.GetBytes("123456789")));
        Assert.Equal(0u, ShardChecksum.Compute([]));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(33)]
    [InlineData(4099)]
    [InlineData(3 * 8192 - 1)] // one byte short of a three-chain block
    [InlineData(3 * 8192)] // exactly one block
    [InlineData(3 * 8192 + 1)]
    [InlineData(3 * 3 * 8192 + 13)] // three blocks and a tail
    [InlineData(1 << 20)]
    public void Instruction_path_equals_the_table_and_appends_in_any_split(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        uint expected = ShardChecksum.ComputeWithTable(data);
        Assert.Equal(expected, ShardChecksum.Compute(data));
        var sum = new ShardChecksum();
        int cut = length / 3;
        sum.Append(data.AsSpan(0, cut));
        sum.Append(data.AsSpan(cut, 1 % (length - cut + 1)));
        sum.Append(data.AsSpan(cut + 1 % (length - cut + 1)));
        Assert.Equal(ShardChecksum.Format(expected), sum.GetTextAndReset());
        Assert.Matches("^crc32c:[0-9a-f]{8}$", ShardChecksum.Format(expected));
    }

    [Fact]
    public void Three_chain_blocks_equal_the_table_on_fresh_random_lengths_and_splits()
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        for (int round = 0; round < 20; round++)
        {
            var data = new byte[random.Next(0, 200_000)];
            random.NextBytes(data);
            uint expected = ShardChecksum.ComputeWithTable(data);
            Assert.True(expected == ShardChecksum.Compute(data), $"seed {seed}, round {round}, length {data.Length}");
            var sum = new ShardChecksum();
            for (int at = 0; at < data.Length;)
            {
                int piece = Math.Min(data.Length - at, random.Next(1, 60_000));
                sum.Append(data.AsSpan(at, piece));
                at += piece;
            }
            Assert.True(ShardChecksum.Format(expected) == sum.GetTextAndReset(), $"seed {seed}, round {round}, split appends");
        }
    }

    [Fact]
    public void ComputeFile_reads_the_algorithm_the_recorded_value_names()
    {
        string path = Path.Combine(Path.GetTempPath(), $"weld-crc-{Guid.NewGuid():N}.bin");
        try
        {
            var data = new byte[3_000_001];
            new Random(5).NextBytes(data);
            File.WriteAllBytes(path, data);
            string crc = ShardChecksum.Format(ShardChecksum.Compute(data));
            Assert.Equal(crc, ShardChecksum.ComputeFile(path, crc));
            string sha = Convert.ToHexStringLower(SHA256.HashData(data)); // a progress file from before CRC32C
            Assert.Equal(sha, ShardChecksum.ComputeFile(path, sha));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Default_memory_limit_follows_the_machine_between_floor_and_cap()
    {
        Assert.Equal(DefaultMemoryLimit.Floor, DefaultMemoryLimit.For(1L << 30));
        Assert.Equal(4L << 30 >> 3, DefaultMemoryLimit.For(4L << 30));
        Assert.Equal(DefaultMemoryLimit.Cap, DefaultMemoryLimit.For(24L << 30));
        Assert.Equal(DefaultMemoryLimit.Cap, DefaultMemoryLimit.For(1L << 40));
        Assert.Contains("1/8 of the 24.0 GiB", DefaultMemoryLimit.Explain(24L << 30), StringComparison.Ordinal);
        Assert.InRange(DefaultMemoryLimit.Bytes, DefaultMemoryLimit.Floor, DefaultMemoryLimit.Cap);
    }
}
