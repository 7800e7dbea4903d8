using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// DELLA's magnitude-rank sampling on the GPU (<c>Gpu/MagnitudeRankSampling.cs</c>) against
/// <see cref="RankSamplingScalarReference"/> and the CPU backend on every accelerator shape: fibers sorted in shared
/// memory (one element, odd lengths, exactly the tile) and fibers past the tile (ranked by counting), strided layouts,
/// more fibers than groups, NaN/±∞ and ties. The counting path is also reached with short fibers through a small tile. Bit for bit, NaN payloads included (kept values are copied or divided).
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
        // (outer, length, stride): empty, single elements, odd lengths, strided, more fibers than the emulated grid, and
        // fibers of 1100 (padded to 2048 for the bitonic sort).
        (int Outer, int Length, int Stride)[] layouts = [(0, 4, 1), (1, 1, 1), (5, 1, 3), (1, 7, 1), (3, 5, 4), (2, 33, 3), (3, 9, 7), (4, 1100, 1)];
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

    /// <summary>
    /// Fibers longer than the tile are ranked by counting over tiles: with a 64-pair tile, fibers of one tile + 1, of
    /// several whole and partial tiles, strided, and fibers sorted next to them (at most the tile).
    /// </summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SampleByMagnitudeRank_ranks_fibers_past_the_tile_by_counting(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed, (uint)seed * 31u, 1);
        RankSamplingInputs.ForEach(seed, [(2, 65, 2), (3, 200, 1), (1, 300, 3), (4, 64, 1), (5, 40, 2)], (context, values, length, stride) =>
        {
            int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
            foreach ((float low, float epsilon, float single, bool divide) in RankSamplingInputs.Settings)
            {
                string where = $"{shape} {context}, tile 64, low {low}, ε {epsilon}, divide {divide}";
                float[] expected = RankSamplingScalarReference.Sample(values, positions, length, low, epsilon, single, divide, key);
                float[] cpu = (float[])values.Clone();
                _cpu.SampleByMagnitudeRank(cpu, length, stride, low, epsilon, single, divide, key);
                float[] actual = (float[])values.Clone();
                gpu.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key, tile: 64);
                BitAssert.Identical(expected, actual, where);
                BitAssert.Identical(cpu, actual, where + " vs cpu");
            }
        });
    }

    /// <summary>
    /// The real tile's edge: a fiber of exactly 4096 pairs (sorted) and one of 4097 (counted over two tiles); one setting,
    /// as counting is O(length²).
    /// </summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SampleByMagnitudeRank_at_the_tile_edge_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed, (uint)seed * 31u, 1);
        (float low, float epsilon, float single, bool divide) = RankSamplingInputs.Settings[0];
        var random = new System.Random(seed);
        foreach ((int outer, int length, int stride) in new[] { (1, 4096, 1), (2, 4097, 2) })
        {
            // Tie-heavy with NaN/±∞: equal magnitudes ranked by position, NaN last (the other kinds add nothing at this
            // length but O(length²) time).
            float[] data = TestData.WithSpecials(random, TestData.TieHeavy(random, outer * length * stride));
            int[] positions = RankSamplingScalarReference.SortedPositions(data, length, stride);
            string where = $"{shape} seed {seed}, [{outer}, {length}, {stride}], ties+specials";
            float[] expected = RankSamplingScalarReference.Sample(data, positions, length, low, epsilon, single, divide, key);
            float[] cpu = (float[])data.Clone();
            _cpu.SampleByMagnitudeRank(cpu, length, stride, low, epsilon, single, divide, key);
            float[] actual = (float[])data.Clone();
            gpu.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key);
            BitAssert.Identical(expected, actual, where);
            BitAssert.Identical(cpu, actual, where + " vs cpu");
        }
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

    /// <summary>The GPU's sampling with norms (the interface's three calls) gives the CPU's fused bits: values and both norms.</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SampleByMagnitudeRankWithNorms_matches_cpu(string shape)
    {
        IMergeKernels gpu = GpuShapes.Get(shape);
        IMergeKernels cpu = _cpu;
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15UL, 0x4321u, 2);
        // Slabs of 1,024 (the CPU fuses per 64K chunk, a partial last one) and of 1,000 (chunks cut slabs: three calls).
        foreach ((int outer, int length, int stride) in new[] { (70, 512, 2), (70, 1000, 1) })
        {
            float[] values = TestData.Plain(random, outer * length * stride);
            foreach (long first in new[] { 0L, 3L * length * stride })
            {
                string context = $"{shape} seed {seed} [{outer}, {length}, {stride}] first {first}";
                float[] onCpu = (float[])values.Clone();
                float[] onGpu = (float[])values.Clone();
                var cpuNorms = cpu.SampleByMagnitudeRankWithNorms(onCpu, length, stride, 0.2f, 0.1f, 0.3f, false, key, first);
                var gpuNorms = gpu.SampleByMagnitudeRankWithNorms(onGpu, length, stride, 0.2f, 0.1f, 0.3f, false, key, first);
                BitAssert.Identical(onCpu, onGpu, context);
                Assert.True(BitAssert.Same(cpuNorms.Before, gpuNorms.Before), $"{context}: before {gpuNorms.Before:R} on the GPU, {cpuNorms.Before:R} on the CPU");
                Assert.True(BitAssert.Same(cpuNorms.After, gpuNorms.After), $"{context}: after {gpuNorms.After:R} on the GPU, {cpuNorms.After:R} on the CPU");
            }
        }
    }
}
