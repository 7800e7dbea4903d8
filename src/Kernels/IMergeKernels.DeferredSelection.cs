namespace Weld.Kernels;

public partial interface IMergeKernels
{
    /// <summary>
    /// <see cref="KeepTopK"/>'s selection, found but possibly not applied: a backend either masks
    /// <paramref name="values"/> now and returns <see cref="MagnitudeSelection.Applied"/> (this default), or leaves
    /// them untouched and returns the selection deferred, for the combine that reads the row next (or
    /// <see cref="ApplySelection"/>) to drop what <see cref="KeepTopK"/> would have zeroed. The row must not change
    /// in between. Either way the combine's output has the bits of <see cref="KeepTopK"/> followed by the plain combine.
    /// </summary>
    MagnitudeSelection SelectTopK(Span<float> values, long k)
    {
        KeepTopK(values, k);
        return MagnitudeSelection.Applied;
    }

    /// <summary><see cref="KeepMagnitudeBand"/>'s selection, found but possibly not applied, as <see cref="SelectTopK"/>.</summary>
    MagnitudeSelection SelectMagnitudeBand(Span<float> values, long dropBottom, long dropTop)
    {
        KeepMagnitudeBand(values, dropBottom, dropTop);
        return MagnitudeSelection.Applied;
    }

    /// <summary>
    /// Applies a selection to the row it was made on: every dropped element becomes +0, exactly what
    /// <see cref="KeepTopK"/> / <see cref="KeepMagnitudeBand"/> write. Nothing to do for
    /// <see cref="MagnitudeSelection.Applied"/>; a deferred selection of another backend throws
    /// <see cref="ArgumentException"/>.
    /// </summary>
    void ApplySelection(Span<float> values, MagnitudeSelection selection) => RequireApplied(selection);

    /// <summary>
    /// <see cref="SignConsensusMergeOntoBase(ReadOnlySpan{float}, ReadOnlySpan{float}, SignElection, bool, float, ReadOnlySpan{float}, Span{float}, ReadOnlySpan{float})"/>
    /// over rows whose selections may be deferred: <paramref name="selections"/> is empty or one per row (null: the row
    /// is read whole). Row k is read as its selection applied to it (dropped elements as +0) and then pre-scaled, so
    /// the output has the bits of <see cref="ApplySelection"/> on every row followed by the plain call, while the rows
    /// are neither written nor read one extra time.
    /// </summary>
    void SignConsensusMergeOntoBase(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, float lambda, ReadOnlySpan<float> baseline, Span<float> output,
        ReadOnlySpan<float> preScales, ReadOnlySpan<MagnitudeSelection?> selections)
    {
        foreach (MagnitudeSelection? selection in selections)
            if (selection is not null) RequireApplied(selection);
        SignConsensusMergeOntoBase(stackedDeltas, weights, election, normalize, lambda, baseline, output, preScales);
    }

    /// <summary>
    /// <see cref="WeightedSumOntoBase(ReadOnlySpan{float}, ReadOnlySpan{float}, float, float, ReadOnlySpan{float}, Span{float}, ReadOnlySpan{float})"/>
    /// over rows whose selections may be deferred, as the selecting overload of SignConsensusMergeOntoBase reads them.
    /// </summary>
    void WeightedSumOntoBase(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, float divisor, float lambda,
        ReadOnlySpan<float> baseline, Span<float> output, ReadOnlySpan<float> preScales, ReadOnlySpan<MagnitudeSelection?> selections)
    {
        foreach (MagnitudeSelection? selection in selections)
            if (selection is not null) RequireApplied(selection);
        WeightedSumOntoBase(stacked, weights, divisor, lambda, baseline, output, preScales);
    }

    private static void RequireApplied(MagnitudeSelection selection)
    {
        if (selection.IsDeferred)
            throw new ArgumentException("A deferred magnitude selection can only be applied by the backend that made it.", nameof(selection));
    }
}
