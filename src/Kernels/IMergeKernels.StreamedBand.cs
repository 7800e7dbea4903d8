namespace Weld.Kernels;

public partial interface IMergeKernels
{
    /// <summary>
    /// One chunk of a streamed <see cref="KeepMagnitudeBand"/> (Model Breadcrumbs over a tensor seen in chunks): zeroes
    /// (to +0) every element whose magnitude key <c>bits(x) &amp; 0x7FFFFFFF</c> is below <paramref name="lowerKey"/> or
    /// above <paramref name="upperKey"/>; of the elements whose key equals <paramref name="lowerKey"/>, the first
    /// <paramref name="lowerTiesToDrop"/> (lowest indices) leave too; of those whose key equals
    /// <paramref name="upperKey"/>, numbered 0, 1, … in index order, those numbered <paramref name="upperTiesToKeep"/>
    /// and up leave. When both keys are equal both rules apply to the same numbering. Returns how many ties each side
    /// consumed (min(budget, ties in the chunk)), so the caller carries both budgets to the next chunk in index order —
    /// together the chunks zero exactly what <see cref="KeepMagnitudeBand"/> zeroes on the whole tensor.
    /// </summary>
    (long LowerTiesDropped, long UpperTiesKept) KeepMagnitudeBandChunk(Span<float> values, int lowerKey, long lowerTiesToDrop,
        int upperKey, long upperTiesToKeep);
}
