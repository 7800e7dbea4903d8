using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>Every kernel gives the same bits on 1 and 4 threads (chunking does not follow the thread count).</summary>
public class DeterminismTests
{
    private const int Length = 5 * 65536 + 4321;

    [Fact]
    public void Every_kernel_is_bit_identical_on_1_and_4_threads()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var serial = new CpuKernels(1);
        var parallel = new CpuKernels(4);
        float[] weights = [0.5f, -0.25f, 1.5f];
        var stacked = new float[weights.Length * Length];
        for (int k = 0; k < weights.Length; k++)
            TestData.WithSpecials(random, TestData.TieHeavy(random, Length)).CopyTo(stacked, k * Length);
        float[] x = TestData.WithSpecials(random, TestData.TieHeavy(random, Length));
        float[] y = TestData.Plain(random, Length);
        var key = new PhiloxKey((ulong)seed, 77, 2);

        void Same(Func<CpuKernels, float[]> run, string what) =>
            BitAssert.Identical(run(serial), run(parallel), $"seed {seed}: {what}");

        Same(kernels => Run(Length, output => kernels.WeightedSum(stacked, weights, output)), "WeightedSum");
        Same(kernels => Run(Length, output => kernels.Axpby(0.3f, x, 0.7f, y, output)), "Axpby");
        Same(kernels => InPlace(stacked, values => kernels.SubtractRows(values, y)), "SubtractRows");
        Same(kernels => InPlace(x, values => kernels.Scale(values, 0.1f)), "Scale");
        Same(kernels => InPlace(x, values => kernels.Divide(values, 0.3f)), "Divide");
        Same(kernels => InPlace(x, values => kernels.KeepTopK(values, Length / 3)), "KeepTopK");
        Same(kernels => InPlace(x, values => kernels.KeepMagnitudeBand(values, Length / 3, Length / 5)), "KeepMagnitudeBand");
        Same(kernels => InPlace(x, values => kernels.DropAndRescale(values, 0.3f, true, key)), "DropAndRescale");
        foreach (SignElection election in new[] { SignElection.Sum, SignElection.Count })
            Same(kernels => Run(Length, output => kernels.SignConsensusMerge(stacked, weights, election, true, output)), $"TIES {election}");

        Assert.Equal(BitConverter.DoubleToInt64Bits(serial.Dot(x, y)), BitConverter.DoubleToInt64Bits(parallel.Dot(x, y)));
        Assert.Equal(BitConverter.DoubleToInt64Bits(serial.SumOfSquares(y)), BitConverter.DoubleToInt64Bits(parallel.SumOfSquares(y)));
        Assert.Equal(BitConverter.DoubleToInt64Bits(serial.SumOfAbs(y)), BitConverter.DoubleToInt64Bits(parallel.SumOfAbs(y)));
    }

    private static float[] Run(int length, Action<float[]> kernel)
    {
        var output = new float[length];
        kernel(output);
        return output;
    }

    private static float[] InPlace(float[] input, Action<float[]> kernel)
    {
        float[] copy = (float[])input.Clone();
        kernel(copy);
        return copy;
    }
}
