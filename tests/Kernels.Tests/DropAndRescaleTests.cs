using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

public class DropAndRescaleTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    [Theory]
    [MemberData(nameof(Sizes))]
    public void DropAndRescale_matches_scalar_Philox_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        float[] values = TestData.WithSpecials(random, TestData.Plain(random, length));
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        foreach (float density in new[] { 0f, 0.1f, 0.5f, 0.3f, 0.999f, 1f, 2f })
        {
            foreach (bool rescale in new[] { true, false })
            {
                string context = $"seed {seed}, n {length}, density {density}, rescale {rescale}, key {key}";
                float[] expected = ScalarReference.DropAndRescale(values, density, rescale, key);
                float[] actual = (float[])values.Clone();
                kernels.DropAndRescale(actual, density, rescale, key);
                BitAssert.Equal(expected, actual, context);
            }
        }
    }

    [Fact]
    public void DropAndRescale_keeps_about_density_and_depends_on_every_key_part()
    {
        int seed = TestData.NewSeed();
        var kernels = new CpuKernels();
        var key = new PhiloxKey((ulong)seed, 0xABCDu, 1);
        float[] Mask(PhiloxKey k)
        {
            float[] ones = new float[100_000];
            Array.Fill(ones, 1f);
            kernels.DropAndRescale(ones, 0.25f, false, k);
            return ones;
        }

        float[] baseline = Mask(key);
        int kept = baseline.Count(v => v == 1f);
        // Binomial(100000, 0.25): sd ≈ 137; 8 sd is far beyond chance.
        Assert.InRange(kept, 25_000 - 1100, 25_000 + 1100);
        Assert.False(baseline.SequenceEqual(Mask(key with { Seed = key.Seed + (1UL << 32) })), $"seed {seed}: seed high word ignored");
        Assert.False(baseline.SequenceEqual(Mask(key with { TensorHash = 0xABCEu })), $"seed {seed}: tensor hash ignored");
        Assert.False(baseline.SequenceEqual(Mask(key with { ModelIndex = 2 })), $"seed {seed}: model index ignored");
    }

    [Fact]
    public void DropAndRescale_rejects_NaN_and_negative_density()
    {
        var kernels = new CpuKernels();
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.DropAndRescale(new float[4], float.NaN, true, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.DropAndRescale(new float[4], -0.5f, true, default));
    }
}
