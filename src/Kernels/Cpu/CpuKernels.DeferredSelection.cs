using System.Numerics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// Magnitude selections found without masking, and the combines that apply them as they read the rows
/// (docs/magnitude-selection.md, "Deferred masks"): a TIES or Breadcrumbs merge reads each task vector once in the
/// combine instead of reading and writing it once more in a mask pass before.
/// </summary>
public sealed unsafe partial class CpuKernels
{
    /// <inheritdoc />
    public MagnitudeSelection SelectTopK(Span<float> values, long k) => FindTopK(values, k, out _);

    /// <inheritdoc />
    public MagnitudeSelection SelectMagnitudeBand(Span<float> values, long dropBottom, long dropTop) =>
        FindMagnitudeBand(values, dropBottom, dropTop);

    /// <inheritdoc />
    public void ApplySelection(Span<float> values, MagnitudeSelection selection)
    {
        if (!selection.IsDeferred)
            return;
        RequireSameLength(selection.Length, values.Length, nameof(values));
        fixed (float* data = values)
        {
            if (selection.DropsAll)
                MagnitudeMask.Clear(data, values.Length, _parallel);
            else
                MagnitudeMask.Apply(data, values.Length, selection.Lower, selection.Upper, _parallel);
        }
    }

    /// <inheritdoc />
    public void SignConsensusMergeOntoBase(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, float lambda, ReadOnlySpan<float> baseline, Span<float> output,
        ReadOnlySpan<float> preScales, ReadOnlySpan<MagnitudeSelection?> selections)
    {
        if (!AnyDeferred(selections))
        {
            SignConsensusMergeOntoBase(stackedDeltas, weights, election, normalize, lambda, baseline, output, preScales);
            return;
        }
        if (election is not (SignElection.Sum or SignElection.Count))
            throw new ArgumentOutOfRangeException(nameof(election), election, "Unknown sign election.");
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequirePreScales(preScales.Length, weights.Length);
        MagnitudeSelection?[] selectionCopy = RequireSelections(selections, weights.Length, length);
        bool lowerOnly = LowerCutsOnly(selectionCopy);
        float[] weightCopy = weights.ToArray();
        float[]? scaleCopy = preScales.IsEmpty ? null : preScales.ToArray();
        fixed (float* source = stackedDeltas)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        fixed (float* scales = scaleCopy)
        {
            nint sourceAddress = (nint)source, baseAddress = (nint)baseStart, destinationAddress = (nint)destination;
            nint scaleAddress = (nint)scales;
            ForEachSelectedSegment(selectionCopy, (float*)sourceAddress, length, (offset, size, bounds, wide) =>
            {
                float* rows = (float*)sourceAddress + offset, at = (float*)baseAddress + offset, to = (float*)destinationAddress + offset;
                Vector<float>* products = stackalloc Vector<float>[weightCopy.Length];
                if (scaleAddress == 0 && lowerOnly)
                    SignConsensusKernel.Merge(new RowsAboveKey(bounds, wide), rows, length, weightCopy, election, normalize, to, size, lambda, at, products);
                else if (scaleAddress == 0)
                    SignConsensusKernel.Merge(new RowsSelected(bounds, wide), rows, length, weightCopy, election, normalize, to, size, lambda, at, products);
                else
                    SignConsensusKernel.Merge(new RowsSelectedPreScaled(bounds, wide, (float*)scaleAddress), rows, length, weightCopy, election, normalize, to, size, lambda, at, products);
            });
        }
    }

    /// <inheritdoc />
    public void WeightedSumOntoBase(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, float divisor, float lambda,
        ReadOnlySpan<float> baseline, Span<float> output, ReadOnlySpan<float> preScales, ReadOnlySpan<MagnitudeSelection?> selections)
    {
        if (!AnyDeferred(selections))
        {
            WeightedSumOntoBase(stacked, weights, divisor, lambda, baseline, output, preScales);
            return;
        }
        int length = output.Length;
        RequireStacked(stacked.Length, weights.Length, length, nameof(stacked));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequirePreScales(preScales.Length, weights.Length);
        MagnitudeSelection?[] selectionCopy = RequireSelections(selections, weights.Length, length);
        float[] weightCopy = weights.ToArray();
        float[]? scaleCopy = preScales.IsEmpty ? null : preScales.ToArray();
        fixed (float* source = stacked)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        fixed (float* scales = scaleCopy)
        {
            nint sourceAddress = (nint)source, baseAddress = (nint)baseStart, destinationAddress = (nint)destination;
            nint scaleAddress = (nint)scales;
            ForEachSelectedSegment(selectionCopy, (float*)sourceAddress, length, (offset, size, bounds, wide) =>
            {
                float* rows = (float*)sourceAddress + offset, at = (float*)baseAddress + offset, to = (float*)destinationAddress + offset;
                if (scaleAddress == 0)
                    ElementwiseKernels.WeightedSumOntoBase(new RowsSelected(bounds, wide), rows, length, weightCopy, divisor, lambda, at, to, size);
                else
                    ElementwiseKernels.WeightedSumOntoBase(new RowsSelectedPreScaled(bounds, wide, (float*)scaleAddress), rows, length, weightCopy, divisor, lambda, at, to, size);
            });
        }
    }

    /// <summary>
    /// A combine over the elements [offset, offset + size) with row k's kept keys (bounds[2k], bounds[2k + 1]], also
    /// broadcast to vectors in <paramref name="wide"/>.
    /// </summary>
    private delegate void SelectedSegment(long offset, int size, int* bounds, Vector<int>* wide);

    /// <summary>
    /// Runs <paramref name="segment"/> over every chunk, each split where a row's tie fate changes
    /// (<see cref="DeferredSelectionChunk"/>); the chunks are <see cref="ChunkedParallel"/>'s, as the selections' tie counts.
    /// </summary>
    private void ForEachSelectedSegment(MagnitudeSelection?[] selections, float* stacked, int length, SelectedSegment segment)
    {
        nint address = (nint)stacked;
        int rows = selections.Length;
        ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
        {
            int* drops = stackalloc int[DeferredSelectionChunk.DropsPerRow * rows];
            int* boundaries = stackalloc int[DeferredSelectionChunk.DropsPerRow * rows + 2];
            int* bounds = stackalloc int[2 * rows];
            Vector<int>* wide = stackalloc Vector<int>[2 * rows];
            int segments = DeferredSelectionChunk.Segment(selections, (float*)address + start, length, chunk, size, drops, boundaries);
            for (int s = 0; s < segments; s++)
            {
                DeferredSelectionChunk.KeyBounds(selections, drops, boundaries[s], bounds);
                for (int j = 0; j < 2 * rows; j++)
                    wide[j] = new Vector<int>(bounds[j]);
                segment(start + boundaries[s], boundaries[s + 1] - boundaries[s], bounds, wide);
            }
        });
    }

    /// <summary>True when no selection has an upper cut: every row keeps the keys above one bound (<see cref="RowsAboveKey"/>).</summary>
    private static bool LowerCutsOnly(MagnitudeSelection?[] selections)
    {
        foreach (MagnitudeSelection? selection in selections)
            if (selection is { IsDeferred: true, Upper: not null }) return false;
        return true;
    }

    private static bool AnyDeferred(ReadOnlySpan<MagnitudeSelection?> selections)
    {
        foreach (MagnitudeSelection? selection in selections)
            if (selection is { IsDeferred: true }) return true;
        return false;
    }

    private static MagnitudeSelection?[] RequireSelections(ReadOnlySpan<MagnitudeSelection?> selections, int rows, int length)
    {
        if (selections.Length != rows)
            throw new ArgumentException($"Expected no selections or one per row ({rows}), got {selections.Length}.", nameof(selections));
        foreach (MagnitudeSelection? selection in selections)
            if (selection is { IsDeferred: true } && selection.Length != length)
                throw new ArgumentException($"A selection made on {selection.Length} elements cannot select from rows of {length}.", nameof(selections));
        return selections.ToArray();
    }

    /// <summary>
    /// <see cref="KeepTopK"/>'s cut without the mask: the k-th largest key and, ties at it keeping the lowest flat indices,
    /// which of them stay. k = 0 drops all; k ≥ n (or an empty span) needs no mask.
    /// </summary>
    private MagnitudeSelection FindTopK(Span<float> values, long k, out TopKSelection kept)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        int length = values.Length;
        if (k == 0)
        {
            kept = new TopKSelection(float.PositiveInfinity, 0, 0);
            return new MagnitudeSelection(length, dropsAll: true, null, null);
        }

        long keep = Math.Min(k, length);
        if (keep == 0)
        {
            kept = new TopKSelection(float.PositiveInfinity, 0, 0);
            return MagnitudeSelection.Applied;
        }

        var equalPerChunk = new int[ChunkedParallel.ChunkCount(length)];
        MagnitudeRank threshold;
        fixed (float* data = values)
            // The k-th largest key sits at ascending rank n − k.
            threshold = MagnitudeSelect.Select(data, length, length - keep, _parallel, equalPerChunk);
        long above = length - threshold.CountBelow - threshold.CountEqual;
        long keptAtThreshold = keep - above;
        kept = new TopKSelection(BitConverter.Int32BitsToSingle(threshold.Key), above, keptAtThreshold);
        if (keep == length)
            return MagnitudeSelection.Applied;
        // Ties keep the lowest flat indices: drop tie indices from keptAtThreshold on.
        var cut = new MagnitudeCut(threshold.Key, keptAtThreshold, threshold.CountEqual, equalPerChunk);
        return new MagnitudeSelection(length, dropsAll: false, cut, null);
    }

    /// <summary><see cref="KeepMagnitudeBand"/>'s two cuts without the mask.</summary>
    private MagnitudeSelection FindMagnitudeBand(Span<float> values, long dropBottom, long dropTop)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dropBottom);
        ArgumentOutOfRangeException.ThrowIfNegative(dropTop);
        int length = values.Length;
        if (dropBottom + dropTop >= length)
            return new MagnitudeSelection(length, dropsAll: true, null, null);
        if (dropBottom == 0 && dropTop == 0)
            return MagnitudeSelection.Applied;

        int chunks = ChunkedParallel.ChunkCount(length);
        int[]? lowerEqual = dropBottom > 0 ? new int[chunks] : null;
        int[]? upperEqual = dropTop > 0 ? new int[chunks] : null;
        MagnitudeCut? lower = null, upper = null;
        MagnitudeRank lowerCut = default, upperCut = default;
        fixed (float* data = values)
        {
            // The last dropped element at the bottom sits at ascending rank dropBottom − 1, the first dropped at the top
            // at rank n − dropTop. Both cuts from one sampled pass when it brackets both, else one select each.
            bool both = lowerEqual is not null && upperEqual is not null
                && SampledMagnitudeSelect.TrySelectPair(data, length, dropBottom - 1, length - dropTop, _parallel, lowerEqual, upperEqual, out lowerCut, out upperCut);
            if (lowerEqual is not null)
            {
                // Ties at the bottom cut leave lowest indices first.
                if (!both)
                    lowerCut = MagnitudeSelect.Select(data, length, dropBottom - 1, _parallel, lowerEqual);
                lower = new MagnitudeCut(lowerCut.Key, 0, dropBottom - lowerCut.CountBelow, lowerEqual);
            }

            if (upperEqual is not null)
            {
                // Ties at the top cut leave highest indices first.
                if (!both)
                    upperCut = MagnitudeSelect.Select(data, length, length - dropTop, _parallel, upperEqual);
                long droppedAtCut = upperCut.CountBelow + upperCut.CountEqual - (length - dropTop);
                upper = new MagnitudeCut(upperCut.Key, upperCut.CountEqual - droppedAtCut, upperCut.CountEqual, upperEqual);
            }
        }
        return new MagnitudeSelection(length, dropsAll: false, lower, upper);
    }
}
