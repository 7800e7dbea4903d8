using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Weld.Kernels.Random;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU DARE kernel and its Philox4x32-10 against the scalar reference (Philox written from the paper) and the
/// CPU backend, bit for bit: several seeds (high key word set), tensor hashes and model indices, densities from 0 to
/// above 1, rescale on and off, and spans that start at any tensor offset (chunked == whole, block index above 2^32).
/// </summary>
public sealed class DropAndRescaleKernelTests
{
    private static readonly int[] s_sizes = [1, 3, 7, 17, 65, 4099, 20011];
    private static readonly float[] s_densities = [0f, 1e-3f, 0.1f, 0.37f, 0.5f, 0.9f, 0.99999994f, 1f, 1.5f];
    private readonly CpuKernels _cpu = new(2);

    private static PhiloxKey[] Keys(int seed) =>
    [
        new((ulong)seed, 0xABCDu, 3),
        new(0xDEADBEEF_00000001UL, 0u, 0u),
        new(ulong.MaxValue, uint.MaxValue, 17),
    ];

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void DropAndRescale_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            float[] values = TestData.WithSpecials(random, TestData.Plain(random, n));
            foreach (PhiloxKey key in Keys(seed))
            {
                foreach (float density in s_densities)
                {
                    foreach (bool rescale in new[] { true, false })
                    {
                        if (n > 100 && density is not (0.37f or 0.9f))
                            continue;
                        string context = $"{shape} seed {seed} n={n} key {key} density {density} rescale {rescale}";
                        float[] expected = ScalarReference.DropAndRescale(values, density, rescale, key);
                        float[] cpu = (float[])values.Clone();
                        float[] actual = (float[])values.Clone();
                        _cpu.DropAndRescale(cpu, density, rescale, key);
                        gpu.DropAndRescale(actual, density, rescale, key);
                        BitAssert.Identical(expected, actual, context + " vs reference");
                        BitAssert.Identical(cpu, actual, context + " vs cpu");
                    }
                }
            }
        }
    }

    /// <summary>A tensor processed in chunks that start anywhere (mid-block too) draws the mask it draws whole.</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void DropAndRescale_in_chunks_draws_the_mask_of_the_whole_tensor(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int n = 20_011;
        float[] values = TestData.Plain(random, n);
        foreach (PhiloxKey key in Keys(seed))
        {
            foreach (bool rescale in new[] { true, false })
            {
                string context = $"{shape} seed {seed} key {key} rescale {rescale}";
                float[] whole = (float[])values.Clone();
                gpu.DropAndRescale(whole, 0.37f, rescale, key);
                BitAssert.Identical(ScalarReference.DropAndRescale(values, 0.37f, rescale, key), whole, context + " whole vs reference");
                float[] chunked = (float[])values.Clone();
                float[] cpu = (float[])values.Clone();
                for (int start = 0; start < n;)
                {
                    int size = Math.Min(n - start, 1 + random.Next(3000));
                    gpu.DropAndRescale(chunked.AsSpan(start, size), 0.37f, rescale, key, start);
                    _cpu.DropAndRescale(cpu.AsSpan(start, size), 0.37f, rescale, key, start);
                    start += size;
                }

                BitAssert.Identical(whole, chunked, context + " chunked vs whole");
                BitAssert.Identical(cpu, chunked, context + " chunked vs cpu");
            }
        }
    }

    /// <summary>Offsets far into a tensor: the block index needs its high counter word (element 2^34 + …).</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void DropAndRescale_at_large_tensor_offsets_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15UL, 0x1234u, 5);
        foreach (long first in new[] { 1L, 2L, 3L, 4L, 4097L, (1L << 34) + 3, (1L << 40) - 2, long.MaxValue / 2 })
        {
            foreach (int n in new[] { 1, 2, 5, 999 })
            {
                float[] values = TestData.Plain(random, n);
                float[] expected = (float[])values.Clone();
                for (int i = 0; i < n; i++)
                {
                    double uniform = (ScalarReference.StreamWord(key, first + i) >> 8) / 16777216.0;
                    expected[i] = uniform < 0.5f ? ScalarReference.Div(values[i], 0.5f) : 0f;
                }

                string context = $"{shape} seed {seed} first {first} n={n}";
                float[] cpu = (float[])values.Clone();
                float[] actual = (float[])values.Clone();
                _cpu.DropAndRescale(cpu, 0.5f, true, key, first);
                gpu.DropAndRescale(actual, 0.5f, true, key, first);
                BitAssert.Identical(expected, actual, context + " vs reference");
                BitAssert.Identical(cpu, actual, context + " vs cpu");
            }
        }
    }

    /// <summary>Equal bits, or NaN on both (a NaN's payload is not part of the contract: the inputs carry NaNs).</summary>
    private static bool SameNorm(double expected, double actual) =>
        BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual) || (double.IsNaN(expected) && double.IsNaN(actual));

    /// <summary>The GPU's drop-with-norms (the interface's three calls) gives the CPU's fused bits: values and both norms.</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void DropAndRescaleWithNorms_matches_cpu(string shape)
    {
        IMergeKernels gpu = GpuShapes.Get(shape);
        IMergeKernels cpu = _cpu;
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15UL, 0x1234u, 5);
        foreach (int n in new[] { 1, 17, 4099, 70001 })
        {
            float[] values = TestData.WithSpecials(random, TestData.Plain(random, n));
            foreach (long first in new[] { 0L, 3L, (1L << 34) + 1 })
            {
                string context = $"{shape} seed {seed} n={n} first {first}";
                float[] onCpu = (float[])values.Clone();
                float[] onGpu = (float[])values.Clone();
                var cpuNorms = cpu.DropAndRescaleWithNorms(onCpu, 0.3f, false, key, first);
                var gpuNorms = gpu.DropAndRescaleWithNorms(onGpu, 0.3f, false, key, first);
                BitAssert.Identical(onCpu, onGpu, context);
                Assert.True(SameNorm(cpuNorms.Before, gpuNorms.Before), $"{context}: before {gpuNorms.Before:R} on the GPU, {cpuNorms.Before:R} on the CPU");
                Assert.True(SameNorm(cpuNorms.After, gpuNorms.After), $"{context}: after {gpuNorms.After:R} on the GPU, {cpuNorms.After:R} on the CPU");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void DropAndRescale_rejects_bad_arguments(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        var key = new PhiloxKey(1, 2, 3);
        float[] values = [1f, 2f];
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.DropAndRescale(values, float.NaN, true, key));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.DropAndRescale(values, -0.1f, true, key));
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.DropAndRescale(values, 0.5f, true, key, -1));
        gpu.DropAndRescale(Span<float>.Empty, 0.5f, true, key, 7);
        Assert.Equal(new[] { 1f, 2f }, values);
    }

    /// <summary>The kernels' Philox equals the paper's on raw counters, keys and the stream layout.</summary>
    [Fact]
    public void GpuPhilox_matches_the_reference_generator()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        for (int trial = 0; trial < 200; trial++)
        {
            ulong block = (ulong)random.NextInt64() ^ ((ulong)random.Next() << 33);
            ulong key = (ulong)random.NextInt64() * 3;
            uint hash = (uint)random.Next(), model = (uint)random.Next(64);
            PhiloxWords words = GpuPhilox.StreamBlock(key, hash, model, block);
            uint[] expected = ScalarReference.Philox([(uint)block, (uint)(block >> 32), hash, model], [(uint)key, (uint)(key >> 32)]);
            Assert.True(expected[0] == words.X0 && expected[1] == words.X1 && expected[2] == words.X2 && expected[3] == words.X3,
                $"seed {seed} block {block} key {key}");
            for (int lane = 0; lane < 4; lane++)
                Assert.Equal(Philox4x32.ToUniform(expected[lane]), GpuPhilox.ToUniform(words.Lane(lane)));
        }
    }
}
