using System.Buffers;

namespace Weld.Kernels.Cpu;

/// <remarks>DELLA's magnitude-rank sampling (<see cref="MagnitudeRankSampling"/>), fibers in parallel.</remarks>
public sealed unsafe partial class CpuKernels
{
    /// <inheritdoc />
    public void SampleByMagnitudeRank(Span<float> values, int fiberLength, int fiberStride, float lowProbability, float epsilon,
        float singleProbability, bool divideByProbability, PhiloxKey key, long firstIndex = 0)
    {
        long fibers = RankSamplingFibers(values.Length, fiberLength, fiberStride);
        if (fibers == 0)
            return;
        var probabilities = new MagnitudeRankSampling.Probabilities(lowProbability, epsilon, singleProbability, divideByProbability);
        fixed (float* data = values)
        {
            nint address = (nint)data;
            // Fibers are disjoint and each draws by flat index, so the result does not depend on the thread count.
            Parallel.For(0L, fibers, _parallel,
                () => ScratchFor(fiberLength),
                (fiber, _, scratch) =>
                {
                    long first = fiber / fiberStride * fiberLength * fiberStride + fiber % fiberStride;
                    MagnitudeRankSampling.SampleFiber((float*)address, first, fiberLength, fiberStride, probabilities, key, firstIndex, scratch);
                    return scratch;
                },
                static _ => { });
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// When a <see cref="ChunkedParallel.ChunkLength"/> chunk holds whole [length × stride] slabs, each chunk is summed,
    /// sampled and summed again while it is in cache: <see cref="SumOfAbs"/> adds the same per-chunk partials in the
    /// same order, so the norms have its bits. Otherwise the three calls.
    /// </remarks>
    public (double Before, double After) SampleByMagnitudeRankWithNorms(Span<float> values, int fiberLength, int fiberStride,
        float lowProbability, float epsilon, float singleProbability, bool divideByProbability, PhiloxKey key, long firstIndex = 0)
    {
        long fibers = RankSamplingFibers(values.Length, fiberLength, fiberStride);
        long slab = (long)fiberLength * fiberStride;
        if (fibers == 0 || ChunkedParallel.ChunkLength % slab != 0)
        {
            double sumBefore = SumOfAbs(values);
            SampleByMagnitudeRank(values, fiberLength, fiberStride, lowProbability, epsilon, singleProbability, divideByProbability, key, firstIndex);
            return (sumBefore, SumOfAbs(values));
        }
        var probabilities = new MagnitudeRankSampling.Probabilities(lowProbability, epsilon, singleProbability, divideByProbability);
        fixed (float* data = values)
        {
            nint address = (nint)data;
            return WithChunkL1Norms(values, () => ScratchFor(fiberLength), (at, start, size, scratch) =>
            {
                double before = ReductionKernels.SumOfAbs(at, size);
                // The chunk's fibers: it starts on a slab boundary and holds whole slabs.
                for (long fiber = start / fiberLength, end = (start + size) / fiberLength; fiber < end; fiber++)
                {
                    long first = fiber / fiberStride * slab + fiber % fiberStride;
                    MagnitudeRankSampling.SampleFiber((float*)address, first, fiberLength, fiberStride, probabilities, key, firstIndex, scratch);
                }
                return (before, ReductionKernels.SumOfAbs(at, size));
            });
        }
    }

    /// <summary>
    /// This thread's scratch for fibers of <paramref name="fiberLength"/>, kept between calls: a tensor sampled block by
    /// block (and every tensor of a model) would otherwise allocate ≈ 45 bytes per fiber element per worker and call,
    /// and rebuild its table of keep probabilities. A loop body runs to its end before its thread takes another, so
    /// one thread never uses the scratch twice at once.
    /// </summary>
    private static MagnitudeRankSampling.Scratch ScratchFor(int fiberLength)
    {
        if (t_rankScratch is not { } scratch || scratch.Length != fiberLength)
            t_rankScratch = scratch = new MagnitudeRankSampling.Scratch(fiberLength);
        return scratch;
    }

    [ThreadStatic]
    private static MagnitudeRankSampling.Scratch? t_rankScratch;

    /// <summary>The fiber count of <see cref="SampleByMagnitudeRank"/> (0 for no values); throws on a layout that does not tile them.</summary>
    internal static long RankSamplingFibers(int length, int fiberLength, int fiberStride)
    {
        if (length == 0)
            return 0;
        if (fiberLength < 1 || fiberStride < 1 || length % ((long)fiberLength * fiberStride) != 0)
            throw new ArgumentException(
                $"{length} values do not split into fibers of {fiberLength} elements {fiberStride} apart.", nameof(fiberLength));
        return length / fiberLength;
    }
}
