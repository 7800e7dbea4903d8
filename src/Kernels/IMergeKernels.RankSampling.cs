namespace Weld.Kernels;

public partial interface IMergeKernels
{
    /// <summary>
    /// DELLA's MagPrune over one task vector, fiber by fiber. Fiber f of <paramref name="values"/> holds the
    /// <paramref name="fiberLength"/> elements first + r·<paramref name="fiberStride"/>, r = 0 … length − 1, with
    /// first = ⌊f / stride⌋·length·stride + f mod stride (the fibers along dim 1 of a [outer, length, stride] tensor;
    /// values.Length is a multiple of length·stride). Within a fiber the elements are ordered by (magnitude key
    /// <c>bits(x) &amp; 0x7FFFFFFF</c>, r) ascending — equal magnitudes by position, NaN last — and the element at
    /// sorted position s gets p = <paramref name="lowProbability"/> + ((s / (length − 1)) · 2) · <paramref name="epsilon"/>
    /// (s and length − 1 as float32, each operation rounded to float32), or p = <paramref name="singleProbability"/>
    /// for a fiber of one element. Element i (flat index) is kept iff u_i &lt; p with u_i the uniform of element i of
    /// the Philox stream of <paramref name="key"/> (as <see cref="DropAndRescale"/> draws it), becoming x / p (one IEEE
    /// division) when <paramref name="divideByProbability"/>; dropped elements become +0.
    /// <paramref name="firstIndex"/> is the tensor index of <c>values[0]</c> (the draws use firstIndex + i), so a tensor
    /// streamed in chunks of whole fibers draws as in one piece.
    /// </summary>
    void SampleByMagnitudeRank(Span<float> values, int fiberLength, int fiberStride, float lowProbability, float epsilon,
        float singleProbability, bool divideByProbability, PhiloxKey key, long firstIndex = 0);

    /// <summary>
    /// <see cref="SampleByMagnitudeRank"/> together with the L1 norms mergekit's rescale needs: returns
    /// <see cref="SumOfAbs"/> of <paramref name="values"/> before and after the sampling, the same bits as calling
    /// SumOfAbs, SampleByMagnitudeRank and SumOfAbs in turn (which this default does; a backend may fuse the three so
    /// the span travels from memory once).
    /// </summary>
    (double Before, double After) SampleByMagnitudeRankWithNorms(Span<float> values, int fiberLength, int fiberStride,
        float lowProbability, float epsilon, float singleProbability, bool divideByProbability, PhiloxKey key, long firstIndex = 0)
    {
        double before = SumOfAbs(values);
        SampleByMagnitudeRank(values, fiberLength, fiberStride, lowProbability, epsilon, singleProbability, divideByProbability, key, firstIndex);
        return (before, SumOfAbs(values));
    }
}
