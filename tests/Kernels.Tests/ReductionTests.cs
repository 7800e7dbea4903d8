using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

public class ReductionTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Dot_and_SumOfSquares_match_float64_reference_within_rounding_bound(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] a = TestData.Plain(random, length);
        float[] b = TestData.TieHeavy(random, length);
        double dot = 0, dotMagnitude = 0, squares = 0;
        for (int i = 0; i < length; i++)
        {
            double product = (double)a[i] * b[i];
            dot += product;
            dotMagnitude += Math.Abs(product);
            squares += (double)a[i] * a[i];
        }

        // Any two summation orders differ by at most 2·n·2^-53 of Σ|terms| (each within n·u of the exact sum).
        double bound = 2.0 * length * Math.Pow(2, -53);
        var kernels = new CpuKernels();
        double actualDot = kernels.Dot(a, b);
        double actualSquares = kernels.SumOfSquares(a);
        Assert.True(Math.Abs(actualDot - dot) <= bound * dotMagnitude, $"seed {seed}, n {length}: dot {actualDot:R}, expected {dot:R}");
        Assert.True(Math.Abs(actualSquares - squares) <= bound * squares, $"seed {seed}, n {length}: sumsq {actualSquares:R}, expected {squares:R}");
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void SumOfAbs_matches_float64_reference_within_rounding_bound(int length)
    {
        int seed = TestData.NewSeed();
        float[] a = TestData.TieHeavy(new System.Random(seed), length);
        double expected = 0;
        foreach (float v in a) expected += Math.Abs((double)v);
        double actual = new CpuKernels().SumOfAbs(a);
        Assert.True(Math.Abs(actual - expected) <= 2.0 * length * Math.Pow(2, -53) * expected, $"seed {seed}, n {length}: {actual:R} vs {expected:R}");
        Assert.Equal(1001L * 1000 / 2, (long)new CpuKernels().SumOfAbs(Enumerable.Range(0, 1001).Select(i => (float)(i % 2 == 0 ? i : -i)).ToArray()));
    }

    [Fact]
    public void Dot_is_exact_on_small_integers()
    {
        float[] a = Enumerable.Range(0, 1001).Select(i => (float)(i - 500)).ToArray();
        float[] b = Enumerable.Range(0, 1001).Select(i => (float)(i % 7)).ToArray();
        long expected = 0, squares = 0;
        for (int i = 0; i < a.Length; i++)
        {
            expected += (long)a[i] * (long)b[i];
            squares += (long)a[i] * (long)a[i];
        }

        var kernels = new CpuKernels();
        Assert.Equal(expected, kernels.Dot(a, b));
        Assert.Equal(squares, kernels.SumOfSquares(a));
    }

    [Fact]
    public void Dot_propagates_NaN_and_rejects_mismatched_lengths()
    {
        var kernels = new CpuKernels();
        Assert.True(double.IsNaN(kernels.Dot([1f, float.NaN, 2f], [1f, 1f, 1f])));
        Assert.Throws<ArgumentException>(() => kernels.Dot(new float[3], new float[4]));
    }
}
