using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>
/// reduce.cu's summation order, written out here as scalar C# (one float64 accumulator per chunk lane, the lanes
/// combined as ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)), the tail added one by one, chunk partials added in
/// order), gives CpuKernels' bits. Runs without a GPU: it checks the order the kernel claims, which the GPU tests
/// then check the kernel against.
/// </summary>
public sealed class ReductionOrderModelTests
{
    private const int Chunk = 65536;
    private const int Lanes = 8;

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(65541)]
    [InlineData(200_003)]
    public void The_kernel_order_reproduces_CpuKernels(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] a = TestData.Plain(random, length), b = TestData.Plain(random, length);
        var cpu = new CpuKernels(2);

        Assert.Equal(Bits(cpu.Dot(a, b)), Bits(KernelOrder(a, b, (x, y) => (double)x * y)));
        Assert.Equal(Bits(cpu.SumOfSquares(a)), Bits(KernelOrder(a, a, (x, _) => (double)x * x)));
        Assert.Equal(Bits(cpu.SumOfAbs(a)), Bits(KernelOrder(a, a, (x, _) => Math.Abs((double)x))));
    }

    private static long Bits(double value) => BitConverter.DoubleToInt64Bits(value);

    private static double KernelOrder(float[] a, float[] b, Func<float, float, double> term)
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
}
