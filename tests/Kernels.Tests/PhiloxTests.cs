using Weld.Kernels.Cpu;
using Weld.Kernels.Random;
using Xunit;

namespace Weld.Kernels.Tests;

public class PhiloxTests
{
    // Random123 tests/kat_vectors, "philox4x32 10" lines: counter[4] key[2] -> output[4]
    // (checked against several independent copies of that file).
    public static TheoryData<uint[], uint[], uint[]> KnownAnswers => new()
    {
        { [0u, 0u, 0u, 0u], [0u, 0u], [0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u] },
        { [0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu], [0xffffffffu, 0xffffffffu], [0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu] },
        { [0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u], [0xa4093822u, 0x299f31d0u], [0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u] },
    };

    [Theory]
    [MemberData(nameof(KnownAnswers))]
    public void Generate_matches_Random123_known_answers(uint[] counter, uint[] key, uint[] expected)
    {
        Philox4x32Block block = Philox4x32.Generate(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
        Assert.Equal(expected, new[] { block.X0, block.X1, block.X2, block.X3 });

        ulong blockIndex = counter[0] | ((ulong)counter[1] << 32);
        ulong key64 = key[0] | ((ulong)key[1] << 32);
        Assert.Equal(block, Philox4x32.Generate(blockIndex, counter[2], counter[3], key64));
    }

    [Theory]
    [MemberData(nameof(KnownAnswers))]
    public void Test_reference_matches_Random123_known_answers(uint[] counter, uint[] key, uint[] expected) =>
        Assert.Equal(expected, ScalarReference.Philox(counter, key));

    [Fact]
    public void Generate_matches_reference_on_random_counters_and_keys()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        for (int trial = 0; trial < 2000; trial++)
        {
            uint[] counter = [NextUInt(random), NextUInt(random), NextUInt(random), NextUInt(random)];
            uint[] key = [NextUInt(random), NextUInt(random)];
            Philox4x32Block block = Philox4x32.Generate(counter[0], counter[1], counter[2], counter[3], key[0], key[1]);
            Assert.True(ScalarReference.Philox(counter, key).SequenceEqual(new[] { block.X0, block.X1, block.X2, block.X3 }),
                $"seed {seed}, trial {trial}");
        }
    }

    [Fact]
    public void ElementBits_uses_block_index_lanes_and_stream_words()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        for (int trial = 0; trial < 500; trial++)
        {
            var key = new PhiloxKey(((ulong)NextUInt(random) << 32) | NextUInt(random), NextUInt(random), NextUInt(random));
            // Indices past 2^34 put bits into counter word 1.
            long element = trial % 2 == 0 ? random.Next() : random.NextInt64(1L << 34, long.MaxValue);
            Assert.True(ScalarReference.StreamWord(key, element) == Philox4x32.ElementBits(key, element),
                $"seed {seed}, key {key}, element {element}");
        }
    }

    [Theory]
    [InlineData(0L, 0)]
    [InlineData(0L, 1)]
    [InlineData(3L, 9)]
    [InlineData(5L, 4)]
    [InlineData(6L, 1001)]
    [InlineData(17179869183L, 13)]
    public void FillUniform_gives_each_element_its_own_stream_word(long firstElement, int length)
    {
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15UL, (uint)seed, 3);
        var uniforms = new float[length];
        Philox4x32.FillUniform(key, firstElement, uniforms);
        for (int i = 0; i < length; i++)
        {
            float expected = (float)((ScalarReference.StreamWord(key, firstElement + i) >> 8) / 16777216.0);
            Assert.True(BitAssert.Bits(expected) == BitAssert.Bits(uniforms[i]), $"seed {seed}, element {firstElement + i}");
            Assert.InRange(uniforms[i], 0f, 0.99999994f);
        }
    }

    [Fact]
    public void ToUniform_is_exact_at_the_extremes()
    {
        Assert.Equal(0f, Philox4x32.ToUniform(0xFFu));
        Assert.Equal(1f - 1f / 16777216f, Philox4x32.ToUniform(uint.MaxValue));
        Assert.Equal(0.5f, Philox4x32.ToUniform(0x80000000u));
    }

    [Fact]
    public void Scalar_stream_words_equal_the_reference() => StreamWordsEqualTheReference(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_stream_words_equal_the_reference() => StreamWordsEqualTheReference(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_stream_words_equal_the_reference() => StreamWordsEqualTheReference(PhiloxWidth.Avx512);

    /// <summary>
    /// <see cref="PhiloxStreamWords"/> on one path (tails go to narrower ones) against the reference Philox: runs that
    /// start inside a block and past block 2^32, counts around the 16-, 32- and 64-word steps, keys with every word set.
    /// </summary>
    private static void StreamWordsEqualTheReference(PhiloxWidth width)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        PhiloxKey[] keys =
        [
            new(((ulong)NextUInt(random) << 32) | NextUInt(random), NextUInt(random), NextUInt(random)),
            new(ulong.MaxValue, uint.MaxValue, uint.MaxValue),
            new(0, 0, 0),
        ];
        var words = new uint[301];
        foreach (PhiloxKey key in keys)
            foreach (long first in new[] { 0, 1, 2, 3, 5, 16, 17, 32, (1L << 34) + 3, (1L << 36) + 4, random.NextInt64(1L << 40) })
                foreach (int count in new[] { 0, 1, 3, 4, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 127, 128, 129, 199, 300 })
                {
                    Array.Fill(words, 0xDEADBEEFu);
                    PhiloxStreamWords.Fill(key, first, words.AsSpan(0, count), width);
                    for (int i = 0; i < count; i++)
                        Assert.True(ScalarReference.StreamWord(key, first + i) == words[i],
                            $"{width} seed {seed}: key {key}, first {first}, count {count}, word {i}");
                    Assert.Equal(0xDEADBEEFu, words[count]); // nothing written past the count
                }
    }

    private static uint NextUInt(System.Random random) => (uint)random.NextInt64(0, 1L << 32);
}
