using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Gemm;

/// <summary><see cref="Cpu.Gemm"/> against a plain float64 triple loop.</summary>
public class GemmTests
{
    private static float[] Random(int count, int seed)
    {
        var random = new System.Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(random.NextDouble() * 2 - 1);
        return values;
    }

    /// <summary>C = A·B (or A·Bᵀ) in float64, with the bound on float32 rounding error for each element.</summary>
    internal static (double[] C, double[] Bound) Reference(float[] a, float[] b, int m, int k, int n, bool transposeB)
    {
        var c = new double[m * n];
        var bound = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0, magnitude = 0;
                for (int p = 0; p < k; p++)
                {
                    double x = a[i * k + p], y = transposeB ? b[j * k + p] : b[p * n + j];
                    sum += x * y;
                    magnitude += Math.Abs(x * y);
                }

                c[i * n + j] = sum;
                // Any float32 summation order is within k·ε·Σ|x·y| (γ_k bound), plus slack for the tiny sums.
                bound[i * n + j] = (k + 2) * 6e-8 * magnitude + 1e-30;
            }
        }

        return (c, bound);
    }

    [Theory]
    [InlineData(1, 1, 1, false)]
    [InlineData(1, 1, 1, true)]
    [InlineData(3, 5, 7, false)]
    [InlineData(7, 13, 5, true)]
    [InlineData(33, 17, 65, false)]
    [InlineData(37, 129, 71, true)]
    [InlineData(64, 128, 64, true)]
    [InlineData(5, 300, 131, false)]
    [InlineData(130, 7, 3, true)]
    public void Matches_a_float64_triple_loop_on_odd_sizes(int m, int k, int n, bool transposeB)
    {
        float[] a = Random(m * k, m * 1000 + k);
        float[] b = Random(k * n, n * 7 + 3);
        var c = new float[m * n];
        Cpu.Gemm.Multiply(a, b, c, m, k, n, transposeB);
        (double[] expected, double[] bound) = Reference(a, b, m, k, n, transposeB);
        for (int i = 0; i < c.Length; i++)
            Assert.True(Math.Abs(c[i] - expected[i]) <= bound[i], $"C[{i / n},{i % n}] = {c[i]:R}, expected {expected[i]:R} ± {bound[i]:E2}");
    }

    [Fact]
    public void Transposed_and_plain_B_give_the_same_bits()
    {
        const int m = 19, k = 77, n = 23;
        float[] a = Random(m * k, 1);
        float[] b = Random(k * n, 2);
        var bt = new float[n * k];
        for (int p = 0; p < k; p++)
            for (int j = 0; j < n; j++)
                bt[j * k + p] = b[p * n + j];
        var plain = new float[m * n];
        var transposed = new float[m * n];
        Cpu.Gemm.Multiply(a, b, plain, m, k, n);
        Cpu.Gemm.Multiply(a, bt, transposed, m, k, n, transposeB: true);
        Assert.Equal(plain, transposed);
    }

    [Fact]
    public void Result_bits_do_not_depend_on_the_thread_count()
    {
        const int m = 203, k = 301, n = 257; // several tiles each way, ragged edges, above the parallel threshold
        float[] a = Random(m * k, 11);
        float[] b = Random(n * k, 12);
        var one = new float[m * n];
        Cpu.Gemm.Multiply(a, b, one, m, k, n, transposeB: true, maxDegreeOfParallelism: 1);
        foreach (int threads in new[] { 2, 3, 8, -1 })
        {
            var many = new float[m * n];
            Cpu.Gemm.Multiply(a, b, many, m, k, n, transposeB: true, maxDegreeOfParallelism: threads);
            for (int i = 0; i < one.Length; i++)
                Assert.Equal(BitConverter.SingleToUInt32Bits(one[i]), BitConverter.SingleToUInt32Bits(many[i]));
        }
    }

    [Fact]
    public void Zero_inner_dimension_clears_C_and_bad_sizes_throw()
    {
        var c = new float[] { 1, 2, 3, 4 };
        Cpu.Gemm.Multiply([], [], c, 2, 0, 2);
        Assert.All(c, value => Assert.Equal(0f, value));
        Assert.Throws<ArgumentOutOfRangeException>(() => Cpu.Gemm.Multiply(new float[5], new float[6], new float[4], 2, 3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Cpu.Gemm.Multiply(new float[6], new float[6], new float[3], 2, 3, 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => Cpu.Gemm.Multiply(new float[6], new float[6], new float[4], 2, 3, 2, maxDegreeOfParallelism: 0));
    }
}
