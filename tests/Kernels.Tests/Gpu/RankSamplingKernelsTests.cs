using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// DELLA's magnitude-rank sampling on the GPU (<c>Gpu/MagnitudeRankSampling.cs</c>) against
/// <see cref="RankSamplingScalarReference"/> and the CPU backend on every accelerator shape: fibers sorted in shared
/// memory (one element, odd lengths, exactly the tile) and fibers past the tile (ranked by counting), strided layouts,
/// more fibers than groups, NaN/±∞ and ties. Bit for bit, NaN payloads included (kept values are copied or divided).
/// </summary>
public sealed class RankSamplingKernelsTests
{
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SampleByMagnitudeRank_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0xA5A5A5A5u, 3);
        // (outer, length, stride): the shared layouts, more fibers than the emulated grid, and the tile edge (4096 sorted).
        (int Outer, int Length, int Stride)[] layouts = [.. RankSamplingInputs.Layouts, (3, 9, 7), (1, 4096, 1)];
        RankSamplingInputs.ForEach(seed, layouts, (context, values, length, stride) =>
        {
            int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
            foreach ((float low, float epsilon, float single, bool divide) in RankSamplingInputs.Settings)
            {
                string where = $"{shape} {context}, low {low}, ε {epsilon}, divide {divide}";
                float[] expected = RankSamplingScalarReference.Sample(values, positions, length, low, epsilon, single, divide, key);
                float[] cpu = (float[])values.Clone();
                _cpu.SampleByMagnitudeRank(cpu, length, stride, low, epsilon, single, divide, key);
                float[] actual = (float[])values.Clone();
                gpu.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key);
                BitAssert.Identical(expected, actual, where);
                BitAssert.Identical(cpu, actual, where + " vs cpu");
            }
        });
    }

    /// <summary>Fibers longer than the shared-memory tile are ranked by counting over tiles (one setting: O(length²)).</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SampleByMagnitudeRank_of_fibers_past_the_tile_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed, (uint)seed * 31u, 1);
        (float low, float epsilon, float single, bool divide) = RankSamplingInputs.Settings[0];
        RankSamplingInputs.ForEach(seed, [(2, 4097, 2), (1, 9000, 1)], (context, values, length, stride) =>
        {
            int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
            string where = $"{shape} {context}";
            float[] expected = RankSamplingScalarReference.Sample(values, positions, length, low, epsilon, single, divide, key);
            float[] cpu = (float[])values.Clone();
            _cpu.SampleByMagnitudeRank(cpu, length, stride, low, epsilon, single, divide, key);
            float[] actual = (float[])values.Clone();
            gpu.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key);
            BitAssert.Identical(expected, actual, where);
            BitAssert.Identical(cpu, actual, where + " vs cpu");
        });
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SampleByMagnitudeRank_rejects_a_layout_that_does_not_tile_the_values(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        var key = new PhiloxKey(1, 2, 3);
        Assert.Throws<ArgumentException>(() => gpu.SampleByMagnitudeRank(new float[10], 3, 1, 0.4f, 0.1f, 0.5f, true, key));
        Assert.Throws<ArgumentException>(() => gpu.SampleByMagnitudeRank(new float[12], 3, 0, 0.4f, 0.1f, 0.5f, true, key));
    }
}
