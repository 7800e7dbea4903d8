using Weld.Kernels.Cpu;
using Xunit;
using Xunit.Sdk;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// Dot, SumOfSquares and SumOfAbs on the GPU against the CPU backend, bit for bit (the kernel adds in the CPU's
/// order: 64K chunks, eight lane accumulators, the CPU's lane combination, the tail one by one, chunk partials in
/// order), and against that order written out as scalar C#. NaN results need only both be NaN.
/// </summary>
public sealed class ReductionKernelsTests
{
    private const int Chunk = 65536;
    private const int Lanes = 8;

    // Tails of every length mod 8, one chunk exactly, one chunk plus a tail, several chunks with a ragged last one.
    private static readonly int[] s_sizes = [1, 7, 8, 9, 15, 63, 64, 65, 1000, 4099, Chunk, Chunk + 1, Chunk + 5, 200_003];
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Reductions_match_cpu_and_the_chunk_order_bit_for_bit(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            foreach ((string kind, _) in TestData.Kinds(random, 0))
            {
                float[] a = ElementwiseKernelsTests.Row(random, kind, n), b = ElementwiseKernelsTests.Row(random, kind, n);
                string context = $"{shape} seed {seed} n={n} {kind}";
                double dot = gpu.Dot(a, b), squares = gpu.SumOfSquares(a), absolute = gpu.SumOfAbs(a);
                AssertSame(_cpu.Dot(a, b), dot, context + " dot vs cpu");
                AssertSame(ChunkOrder(a, b, (x, y) => (double)x * y), dot, context + " dot vs reference");
                AssertSame(_cpu.SumOfSquares(a), squares, context + " sum of squares vs cpu");
                AssertSame(ChunkOrder(a, a, (x, _) => (double)x * x), squares, context + " sum of squares vs reference");
                AssertSame(_cpu.SumOfAbs(a), absolute, context + " sum of abs vs cpu");
                AssertSame(ChunkOrder(a, a, (x, _) => Math.Abs((double)x)), absolute, context + " sum of abs vs reference");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Order_sensitive_inputs_match_cpu(string shape)
    {
        // Terms of wildly different magnitudes with cancellation: any other association changes the low bits.
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int n = Chunk * 2 + 13;
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 30)));
        float[] b = TestData.Plain(random, n);
        string context = $"{shape} seed {seed}";
        double dot = gpu.Dot(a, b);
        AssertSame(_cpu.Dot(a, b), dot, context + " dot");
        AssertSame(_cpu.SumOfSquares(a), gpu.SumOfSquares(a), context + " sum of squares");
        AssertSame(_cpu.SumOfAbs(a), gpu.SumOfAbs(a), context + " sum of abs");
        // The chunk order is not a sum in index order (else this input could not tell orders apart).
        double sequential = 0;
        for (int i = 0; i < n; i++)
            sequential += (double)a[i] * b[i];
        Assert.NotEqual(BitConverter.DoubleToInt64Bits(sequential), BitConverter.DoubleToInt64Bits(dot));
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Unaligned_spans_empty_inputs_and_bad_lengths(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[] values = TestData.Plain(new System.Random(seed), Chunk + 11);
        for (int offset = 1; offset < 4; offset++)
        {
            ReadOnlySpan<float> a = values.AsSpan(offset), b = values.AsSpan(0, a.Length);
            string context = $"{shape} seed {seed} offset {offset}";
            AssertSame(_cpu.Dot(a, b), gpu.Dot(a, b), context + " dot");
            AssertSame(_cpu.SumOfSquares(a), gpu.SumOfSquares(a), context + " sum of squares");
            AssertSame(_cpu.SumOfAbs(a), gpu.SumOfAbs(a), context + " sum of abs");
        }
        Assert.Equal(0.0, gpu.Dot([], []));
        Assert.Equal(0.0, gpu.SumOfSquares([]));
        Assert.Equal(0.0, gpu.SumOfAbs([]));
        Assert.Throws<ArgumentException>(() => gpu.Dot(new float[3], new float[4]));
    }

    /// <summary>The CPU's summation order written out: eight lanes per 64K chunk, combined, tail, chunks in order.</summary>
    private static double ChunkOrder(float[] a, float[] b, Func<float, float, double> term)
    {
        double total = 0;
        for (int start = 0; start < a.Length; start += Chunk)
        {
            int size = Math.Min(Chunk, a.Length - start);
            int grouped = size - size % Lanes;
            var lanes = new double[Lanes];
            for (int lane = 0; lane < Lanes; lane++)
                for (int i = lane; i < grouped; i += Lanes)
                    lanes[lane] += term(a[start + i], b[start + i]);
            double partial = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
            for (int i = grouped; i < size; i++)
                partial += term(a[start + i], b[start + i]);
            total += partial;
        }
        return total;
    }

    private static void AssertSame(double expected, double actual, string context)
    {
        if (double.IsNaN(expected) && double.IsNaN(actual))
            return;
        if (BitConverter.DoubleToInt64Bits(expected) != BitConverter.DoubleToInt64Bits(actual))
            throw new XunitException($"{context}: GPU {actual:R}, expected {expected:R}");
    }
}
