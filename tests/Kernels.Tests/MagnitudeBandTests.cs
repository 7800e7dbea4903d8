using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

public class MagnitudeBandTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    [Theory]
    [MemberData(nameof(Sizes))]
    public void KeepMagnitudeBand_matches_stable_sort_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        foreach ((string kind, float[] values) in TestData.Kinds(random, length))
        {
            int[] ascending = ScalarReference.AscendingOrder(values);
            (long Bottom, long Top)[] cuts =
            [
                (0, 0), (1, 0), (0, 1), (length / 3, length / 10), (length - 1, 0), (0, length - 1),
                (length / 2, length / 2), (length, 0), (0, length), (length / 2 + 1, length / 2 + 1),
                (random.Next(length + 1), random.Next(length + 1)),
            ];
            foreach ((long bottom, long top) in cuts)
            {
                if (bottom < 0 || top < 0)
                    continue; // (n − 1, 0) at n = 0
                string context = $"seed {seed}, {kind}, n {length}, dropBottom {bottom}, dropTop {top}";
                float[] expected = ScalarReference.Band(values, ascending, bottom, top);
                float[] actual = (float[])values.Clone();
                kernels.KeepMagnitudeBand(actual, bottom, top);
                BitAssert.Identical(expected, actual, context);
            }
        }
    }

    [Fact]
    public void KeepMagnitudeBand_drops_low_indices_at_bottom_and_high_indices_at_top_among_ties()
    {
        var kernels = new CpuKernels(1);
        float[] values = [1f, -1f, 1f, -1f, 1f];
        kernels.KeepMagnitudeBand(values, 1, 2);
        Assert.Equal(new[] { 0u, 0xBF800000u, 0x3F800000u, 0u, 0u }, values.Select(BitAssert.Bits));
    }

    [Fact]
    public void KeepMagnitudeBand_rejects_negative_counts()
    {
        var kernels = new CpuKernels();
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.KeepMagnitudeBand(new float[3], -1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.KeepMagnitudeBand(new float[3], 0, -1));
    }
}
