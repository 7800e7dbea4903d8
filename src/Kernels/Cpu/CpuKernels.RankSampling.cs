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
                () => new MagnitudeRankSampling.Scratch(fiberLength),
                (fiber, _, scratch) =>
                {
                    long first = fiber / fiberStride * fiberLength * fiberStride + fiber % fiberStride;
                    MagnitudeRankSampling.SampleFiber((float*)address, first, fiberLength, fiberStride, probabilities, key, firstIndex, scratch);
                    return scratch;
                },
                static _ => { });
        }
    }

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
