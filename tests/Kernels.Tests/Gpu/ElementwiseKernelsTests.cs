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

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SubtractRows_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            foreach ((string kind, _) in TestData.Kinds(random, 0))
            {
                const int rows = 3;
                float[] baseline = Row(random, kind, n);
                var stacked = new float[rows * n];
                for (int k = 0; k < rows; k++)
                    Row(random, kind, n).CopyTo(stacked, k * n);
                var reference = (float[])stacked.Clone();
                for (int k = 0; k < rows; k++)
                    for (int i = 0; i < n; i++)
                        reference[k * n + i] -= baseline[i];
                var cpu = (float[])stacked.Clone();
                var actual = (float[])stacked.Clone();
                _cpu.SubtractRows(cpu, baseline);
                gpu.SubtractRows(actual, baseline);
                string context = $"{shape} seed {seed} n={n} {kind}";
                BitAssert.Equal(reference, actual, context + " vs reference");
                BitAssert.Equal(cpu, actual, context + " vs cpu");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Axpby_Scale_Divide_match_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        // Not powers of two: the products round, so a fused a·x + b·y (or a reciprocal multiply) would show.
        const float a = 0.37f, b = -2.5f, factor = 1.7f, divisor = 3.1f;
        foreach (int n in s_sizes)
        {
            foreach ((string kind, _) in TestData.Kinds(random, 0))
            {
                float[] x = Row(random, kind, n), y = Row(random, kind, n);
                string context = $"{shape} seed {seed} n={n} {kind}";
                var reference = new float[n];
                for (int i = 0; i < n; i++)
                {
                    float ax = a * x[i], by = b * y[i]; // rounded one by one
                    reference[i] = ax + by;
                }
                var cpu = new float[n];
                var actual = new float[n];
                _cpu.Axpby(a, x, b, y, cpu);
                gpu.Axpby(a, x, b, y, actual);
                BitAssert.Equal(reference, actual, context + " axpby vs reference");
                BitAssert.Equal(cpu, actual, context + " axpby vs cpu");

                for (int i = 0; i < n; i++)
                    reference[i] = x[i] * factor;
                x.CopyTo(cpu, 0);
                x.CopyTo(actual, 0);
                _cpu.Scale(cpu, factor);
                gpu.Scale(actual, factor);
                BitAssert.Equal(reference, actual, context + " scale vs reference");
                BitAssert.Equal(cpu, actual, context + " scale vs cpu");

                for (int i = 0; i < n; i++)
                    reference[i] = x[i] / divisor;
                x.CopyTo(cpu, 0);
                x.CopyTo(actual, 0);
                _cpu.Divide(cpu, divisor);
                gpu.Divide(actual, divisor);
                BitAssert.Equal(reference, actual, context + " divide vs reference");
                BitAssert.Equal(cpu, actual, context + " divide vs cpu");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Empty_inputs_and_bad_lengths(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        gpu.SubtractRows(Span<float>.Empty, ReadOnlySpan<float>.Empty);
        gpu.Axpby(1f, [], 2f, [], Span<float>.Empty);
        gpu.Scale(Span<float>.Empty, 2f);
        gpu.Divide(Span<float>.Empty, 2f);
        Assert.Throws<ArgumentException>(() => gpu.SubtractRows(new float[5], new float[2]));
        Assert.Throws<ArgumentException>(() => gpu.Axpby(1f, new float[3], 1f, new float[2], new float[3]));
        Assert.Throws<ArgumentException>(() => gpu.Axpby(1f, new float[2], 1f, new float[3], new float[3]));
    }

    internal static float[] Row(System.Random random, string kind, int n) => kind switch
    {
        "plain" => TestData.Plain(random, n),
        "ties" => TestData.TieHeavy(random, n),
        "plain+specials" => TestData.WithSpecials(random, TestData.Plain(random, n)),
        _ => TestData.WithSpecials(random, TestData.TieHeavy(random, n)),
    };
}
