using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The chunk kernels of streamed Breadcrumbs and DELLA on every accelerator shape against the CPU backend, bit for bit:
/// <see cref="IMergeKernels.KeepMagnitudeBandChunk"/> over random chunks with carried tie budgets, and
/// <see cref="IMergeKernels.SampleByMagnitudeRank"/> of whole slices at a tensor offset.
/// </summary>
public sealed class StreamedChunkKernelsTests
{
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Band_chunks_match_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int length in new[] { 1, 7, 5003 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, length))
            {
                int[] ascending = ScalarReference.AscendingOrder(values);
                foreach ((long bottom, long top) in new (long, long)[] { (0, 1), (1, 0), (length / 3, length / 10), (length / 2, length / 2 - 1) })
                {
                    if (bottom < 0 || top < 0 || bottom + top >= length) continue;
                    int lowerKey = bottom > 0 ? (int)ScalarReference.Key(values[ascending[bottom]]) : 0;
                    long lowerTies = bottom > 0 ? bottom - values.Count(v => ScalarReference.Key(v) < (uint)lowerKey) : 0;
                    int upperKey = top > 0 ? (int)ScalarReference.Key(values[ascending[length - top]]) : int.MaxValue;
                    long upperTies = top > 0 ? length - top - values.Count(v => ScalarReference.Key(v) < (uint)upperKey) : long.MaxValue;
                    float[] expected = (float[])values.Clone(), actual = (float[])values.Clone();
                    long cpuLower = lowerTies, cpuUpper = upperTies, gpuLower = lowerTies, gpuUpper = upperTies;
                    for (int start = 0; start < length;)
                    {
                        int size = Math.Min(length - start, 1 + random.Next(Math.Max(1, length / 3)));
                        var (d, k) = _cpu.KeepMagnitudeBandChunk(expected.AsSpan(start, size), lowerKey, cpuLower, upperKey, cpuUpper);
                        var (gd, gk) = gpu.KeepMagnitudeBandChunk(actual.AsSpan(start, size), lowerKey, gpuLower, upperKey, gpuUpper);
                        Assert.Equal((d, k), (gd, gk));
                        cpuLower -= d; cpuUpper -= k; gpuLower -= gd; gpuUpper -= gk;
                        start += size;
                    }
                    BitAssert.Identical(ScalarReference.Band(values, ascending, bottom, top), expected, $"{shape} seed {seed} {kind} n {length} cpu");
                    BitAssert.Identical(expected, actual, $"{shape} seed {seed} {kind} n {length} ({bottom}, {top})");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Rank_sampling_at_an_offset_matches_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey(77, 4321, 2);
        RankSamplingInputs.ForEach(seed, [(3, 5, 4), (6, 33, 1)], (context, values, length, stride) =>
        {
            int slice = length * stride;
            float[] expected = values.AsSpan(slice).ToArray(), actual = values.AsSpan(slice).ToArray();
            _cpu.SampleByMagnitudeRank(expected, length, stride, 0.3f, 0.2f, 0.5f, true, key, firstIndex: slice);
            gpu.SampleByMagnitudeRank(actual, length, stride, 0.3f, 0.2f, 0.5f, true, key, firstIndex: slice);
            float[] atZero = values.AsSpan(slice).ToArray();
            _cpu.SampleByMagnitudeRank(atZero, length, stride, 0.3f, 0.2f, 0.5f, true, key);
            Assert.False(atZero.AsSpan().SequenceEqual(expected), $"{context}: the offset changed no draw");
            BitAssert.Identical(expected, actual, $"{shape} {context}");
        });
    }
}
