using Weld.Kernels.Cpu;

namespace Weld.Kernels;

/// <summary>
/// A magnitude selection of one row (<see cref="IMergeKernels.SelectTopK"/>, <see cref="IMergeKernels.SelectMagnitudeBand"/>):
/// either already applied to the row (<see cref="Applied"/>: the row holds its masked form), or found but deferred —
/// the row is untouched and the selection says which elements survive, for a combine to drop the rest as it reads them
/// (<see cref="IMergeKernels.SignConsensusMergeOntoBase(ReadOnlySpan{float}, ReadOnlySpan{float}, SignElection, bool, float, ReadOnlySpan{float}, Span{float}, ReadOnlySpan{float}, ReadOnlySpan{MagnitudeSelection})"/>)
/// or for <see cref="IMergeKernels.ApplySelection"/>. Only the backend that made a deferred selection can use it.
/// </summary>
/// <remarks>
/// A deferred selection of the CPU backend is at most two cuts on the magnitude key (a lower and an upper side,
/// <see cref="MagnitudeCut"/>): an element survives iff its key is inside both, or equal to a cut's key with a tie
/// index (its place among that key's elements in flat index order) outside the cut's dropped tie range. The per-chunk
/// tie counts the select found anyway turn "tie index" into something each 64K chunk decides alone: the ties before
/// the chunk (<see cref="LowerTiesBefore"/>) number its first tie.
/// </remarks>
public sealed class MagnitudeSelection
{
    /// <summary>The selection is already in the row: nothing is left to drop.</summary>
    public static MagnitudeSelection Applied { get; } = new(0, false, null, null);

    internal MagnitudeSelection(int length, bool dropsAll, MagnitudeCut? lower, MagnitudeCut? upper)
    {
        Length = length;
        DropsAll = dropsAll;
        Lower = lower;
        Upper = upper;
        IsDeferred = dropsAll || lower is not null || upper is not null;
        if (lower is { } l) LowerTiesBefore = TiesBefore(l.EqualPerChunk, ChunkedParallel.ChunkCount(length));
        if (upper is { } u) UpperTiesBefore = TiesBefore(u.EqualPerChunk, ChunkedParallel.ChunkCount(length));
    }

    /// <summary>True when the row is still untouched and the selection must be applied by whoever reads it.</summary>
    public bool IsDeferred { get; }

    /// <summary>Elements of the row the selection was made on (0 for <see cref="Applied"/>).</summary>
    internal int Length { get; }

    /// <summary>Every element is dropped (k = 0, or a band whose cuts meet).</summary>
    internal bool DropsAll { get; }

    /// <summary>The lower cut: keys below it drop (and its dropped ties).</summary>
    internal MagnitudeCut? Lower { get; }

    /// <summary>The upper cut: keys above it drop (and its dropped ties).</summary>
    internal MagnitudeCut? Upper { get; }

    /// <summary>Ties of the lower cut's key before each chunk (ChunkCount + 1 entries: the last is the total).</summary>
    internal long[]? LowerTiesBefore { get; }

    /// <summary>Ties of the upper cut's key before each chunk (ChunkCount + 1 entries).</summary>
    internal long[]? UpperTiesBefore { get; }

    private static long[] TiesBefore(int[] perChunk, int chunks)
    {
        var before = new long[chunks + 1];
        for (int chunk = 0; chunk < chunks; chunk++)
            before[chunk + 1] = before[chunk] + perChunk[chunk];
        return before;
    }
}
