namespace Weld.Kernels.Cpu;

/// <summary>
/// One 64K chunk of a combine over rows with deferred magnitude selections (<see cref="MagnitudeSelection"/>): splits
/// the chunk into segments inside which every row's selection is a plain key range, so the combine reads each segment
/// through <see cref="RowsSelected"/> with one (lowerExclusive, upperInclusive] range per row.
/// </summary>
/// <remarks>
/// A cut drops the ties of its key whose tie index (place among the key's elements in flat index order) lies in
/// [TieDropStart, TieDropEnd). Within chunk c the ties are numbered from TiesBefore[c] on, so the dropped ones are
/// those at positions [pos(TieDropStart), pos(TieDropEnd)), pos(t) being where tie t sits in the chunk — 0 when it is
/// at or before the chunk's first tie, the chunk size when it comes after the chunk's last. Only a cut whose tie fate
/// changes inside the chunk (at most two chunks per cut) needs <see cref="MagnitudeMask.IndexOfTie(int*, int, int, long)"/>
/// to find a position; every other chunk is one segment. Segment boundaries are these positions, so no segment
/// straddles a change of fate and each row's fate at a segment's start holds for all of it: the same elements are
/// dropped as by <see cref="MagnitudeMask.Apply(float*, int, MagnitudeCut?, MagnitudeCut?, ParallelOptions)"/>.
/// </remarks>
internal static unsafe class DeferredSelectionChunk
{
    /// <summary>Ints of scratch per row for <see cref="Segment"/>'s drop positions.</summary>
    public const int DropsPerRow = 4;

    /// <summary>
    /// Fills <paramref name="drops"/> (<see cref="DropsPerRow"/> per row: the lower cut's dropped-tie positions [start,
    /// end), then the upper cut's) and <paramref name="boundaries"/> (at least DropsPerRow · rows + 2 entries) with the
    /// sorted distinct segment starts of chunk <paramref name="chunk"/> followed by its size; returns the segment count.
    /// Row 0 of the chunk is at <paramref name="rows"/>, row k <paramref name="rowLength"/> floats further.
    /// </summary>
    public static int Segment(MagnitudeSelection?[] selections, float* rows, long rowLength, int chunk, int size, int* drops, int* boundaries)
    {
        int count = 0;
        boundaries[count++] = 0;
        for (int k = 0; k < selections.Length; k++)
        {
            int* rowDrops = drops + DropsPerRow * k;
            rowDrops[0] = rowDrops[1] = rowDrops[2] = rowDrops[3] = 0;
            if (selections[k] is not { IsDeferred: true, DropsAll: false } selection)
                continue;
            int* bits = (int*)(rows + k * rowLength);
            if (selection.Lower is { } lower)
            {
                long first = selection.LowerTiesBefore![chunk], end = selection.LowerTiesBefore[chunk + 1];
                rowDrops[0] = Position(bits, size, lower.Key, lower.TieDropStart, first, end);
                rowDrops[1] = Position(bits, size, lower.Key, lower.TieDropEnd, first, end);
            }
            if (selection.Upper is { } upper)
            {
                long first = selection.UpperTiesBefore![chunk], end = selection.UpperTiesBefore[chunk + 1];
                rowDrops[2] = Position(bits, size, upper.Key, upper.TieDropStart, first, end);
                rowDrops[3] = Position(bits, size, upper.Key, upper.TieDropEnd, first, end);
            }
            for (int j = 0; j < DropsPerRow; j++)
                if (rowDrops[j] > 0 && rowDrops[j] < size)
                    count = InsertDistinct(boundaries, count, rowDrops[j]);
        }
        boundaries[count] = size;
        return count;
    }

    /// <summary>
    /// Each row's key range (bounds[2k], bounds[2k + 1]] for the segment starting at <paramref name="at"/>: keys outside
    /// it drop. No selection keeps every key (−1, int.MaxValue]; a selection that drops all keeps none.
    /// </summary>
    public static void KeyBounds(MagnitudeSelection?[] selections, int* drops, int at, int* bounds)
    {
        for (int k = 0; k < selections.Length; k++)
        {
            int lowerExclusive = -1, upperInclusive = int.MaxValue;
            int* rowDrops = drops + DropsPerRow * k;
            if (selections[k] is { IsDeferred: true } selection)
            {
                if (selection.DropsAll)
                {
                    lowerExclusive = int.MaxValue;
                }
                else
                {
                    if (selection.Lower is { } lower)
                        lowerExclusive = rowDrops[0] <= at && at < rowDrops[1] ? lower.Key : lower.Key - 1;
                    if (selection.Upper is { } upper)
                        upperInclusive = rowDrops[2] <= at && at < rowDrops[3] ? upper.Key - 1 : upper.Key;
                }
            }
            bounds[2 * k] = lowerExclusive;
            bounds[2 * k + 1] = upperInclusive;
        }
    }

    /// <summary>Where tie <paramref name="tie"/> sits in a chunk whose ties are numbered [first, end).</summary>
    private static int Position(int* bits, int size, int key, long tie, long first, long end)
    {
        if (tie <= first) return 0;
        if (tie >= end) return size;
        return MagnitudeMask.IndexOfTie(bits, size, key, tie - first);
    }

    /// <summary>Inserts <paramref name="value"/> into the sorted boundaries unless present; returns the new count.</summary>
    private static int InsertDistinct(int* sorted, int count, int value)
    {
        int i = count;
        while (i > 0 && sorted[i - 1] > value) i--;
        if (i > 0 && sorted[i - 1] == value) return count;
        for (int j = count; j > i; j--) sorted[j] = sorted[j - 1];
        sorted[i] = value;
        return count + 1;
    }
}
