using Xunit;

namespace Weld.Kernels.Tests;

/// <summary><see cref="KeepMask"/>: recording a sparsified chunk and replaying it on the original gives the sparsified bits.</summary>
public sealed class KeepMaskTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(65)]
    [InlineData(1000)]
    [InlineData(4099)]
    public void Replay_of_the_recorded_bits_equals_the_sparsified_values(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach ((string kind, float[] original) in TestData.Kinds(random, length))
        {
            // Signed zeros on purpose: a kept −0 must replay as −0, a kept or dropped +0 as +0.
            for (int i = 0; i < length; i += 7)
                original[i] = random.Next(2) == 0 ? 0f : -0f;
            float[] sparsified = (float[])original.Clone();
            for (int i = 0; i < length; i++)
                if (random.Next(3) == 0)
                    sparsified[i] = 0f;
            var bits = new ulong[KeepMask.Words(length) + 1];
            bits[^1] = 0xDEADBEEFul;
            KeepMask.Record(sparsified, bits.AsSpan(0, (int)KeepMask.Words(length)));
            Assert.Equal(0xDEADBEEFul, bits[^1]); // nothing written past the words of the chunk
            float[] replayed = (float[])original.Clone();
            KeepMask.Replay(replayed, bits);
            BitAssert.Identical(sparsified, replayed, $"seed {seed}, {kind}, length {length}");
        }
    }
}
