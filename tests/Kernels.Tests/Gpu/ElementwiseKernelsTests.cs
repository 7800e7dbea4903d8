using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU elementwise kernels against their scalar reference and the CPU backend, bit for bit (any NaN matches any
/// NaN), on every accelerator shape: odd sizes, sizes that cross group and grid boundaries, NaN/±∞ and bf16 ties.
/// </summary>
public sealed class ElementwiseKernelsTests
{
    // Small sizes: the emulator runs each thread as an OS thread. 1, a tail below one group, one group ± 1, several
    // grid strides of the small shape (16 threads × 4 groups = 64 a stride) and of the warp-32 shape.
    private static readonly int[] s_sizes = [1, 7, 15, 16, 17, 63, 64, 65, 1000, 4099];
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void WeightedSum_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            foreach ((string kind, _) in TestData.Kinds(random, 0))
            {
                const int rows = 3;
                var stacked = new float[rows * n];
                for (int k = 0; k < rows; k++)
                    Row(random, kind, n).CopyTo(stacked, k * n);
                float[] weights = [0.3f, -1.25f, 0.7f];
                var reference = new float[n];
                for (int i = 0; i < n; i++)
                {
                    float sum = 0f;
                    for (int k = 0; k < rows; k++)
                        sum += weights[k] * stacked[k * n + i];
                    reference[i] = sum;
                }
                var cpu = new float[n];
                var actual = new float[n];
                _cpu.WeightedSum(stacked, weights, cpu);
                gpu.WeightedSum(stacked, weights, actual);
                string context = $"{shape} seed {seed} n={n} {kind}";
                BitAssert.Equal(reference, actual, context + " vs reference");
                BitAssert.Equal(cpu, actual, context + " vs cpu");
            }
        }
    }

    internal static float[] Row(System.Random random, string kind, int n) => kind switch
    {
        "plain" => TestData.Plain(random, n),
        "ties" => TestData.TieHeavy(random, n),
        "plain+specials" => TestData.WithSpecials(random, TestData.Plain(random, n)),
        _ => TestData.WithSpecials(random, TestData.TieHeavy(random, n)),
    };
}
