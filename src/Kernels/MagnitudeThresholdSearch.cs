namespace Weld.Kernels;

/// <summary>
/// The exact top-k magnitude cut of a tensor that is seen in chunks, never whole: a radix select over the 31-bit
/// magnitude key in two counting passes (bits 30..15, then bits 14..0 of the keys sharing the chosen high digit).
/// After the passes, <see cref="IMergeKernels.KeepAboveMagnitude"/> applied to the chunks in index order with the
/// carried tie budget keeps exactly the elements <see cref="IMergeKernels.KeepTopK"/> keeps on the whole tensor.
/// </summary>
public sealed class MagnitudeThresholdSearch
{
    private static ReadOnlySpan<byte> Shifts => [15, 0];
    private static ReadOnlySpan<byte> Widths => [16, 15];

    private readonly long _length;
    private long _keep;
    private readonly long[] _histogram = new long[1 << 16];
    private long _countBelow;
    private int _prefix;

    /// <summary>Starts a search for the <paramref name="keep"/> largest magnitudes of <paramref name="length"/> elements.</summary>
    public MagnitudeThresholdSearch(long length, long keep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        _length = length;
        _keep = Math.Min(keep, length);
        if (_keep == 0)
            Finish(int.MaxValue, 0); // nothing lies above the largest key, no tie is kept
        else if (_keep == length)
            Finish(0, long.MaxValue); // every key is at least 0
    }

    /// <summary>The counting pass in progress (0 or 1); meaningless once <see cref="IsComplete"/>.</summary>
    public int Pass { get; private set; }

    /// <summary>True when the cut is known.</summary>
    public bool IsComplete { get; private set; }

    /// <summary>Elements with a larger key are kept.</summary>
    public int ThresholdKey { get; private set; }

    /// <summary>How many elements with key == <see cref="ThresholdKey"/> are kept, lowest indices first.</summary>
    public long TiesToKeep { get; private set; }

    /// <summary>
    /// Elements with a smaller key than <see cref="ThresholdKey"/>, so the ties at the threshold hold the ascending
    /// ranks CountBelow, CountBelow + 1, … in index order. Exact for 0 &lt; keep &lt; length (found by the counting
    /// passes) and for keep = length (0, the threshold is key 0); not known for keep = 0.
    /// </summary>
    public long CountBelow => _countBelow;

    /// <summary>
    /// Replaces the keep count before the first pass closes, for a caller that learns it only by the end of that pass
    /// (SCE's k = ⌊select_topk · #{var ≠ 0}⌋): the first pass counts the high digits of every key whatever the count.
    /// </summary>
    /// <exception cref="InvalidOperationException">A pass was closed, or the search began complete (keep 0 or the
    /// length, so it counted nothing) and the new count needs the counts.</exception>
    public void Retarget(long keep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(keep);
        keep = Math.Min(keep, _length);
        if (Pass > 0)
            throw new InvalidOperationException("The keep count can only change before the first pass closes.");
        bool special = keep == 0 || keep == _length;
        if (IsComplete && !special && _keep != keep)
            throw new InvalidOperationException("A search that began complete counted nothing: start it with 0 < keep < length.");
        _keep = keep;
        if (keep == 0)
            Finish(int.MaxValue, 0);
        else if (keep == _length)
            Finish(0, long.MaxValue);
    }

    /// <summary>Counts one chunk in the current pass (chunks of a pass may come in any order).</summary>
    public void Observe(IMergeKernels kernels, ReadOnlySpan<float> chunk)
    {
        if (IsComplete) return;
        int pass = Pass;
        kernels.MagnitudeHistogram(chunk, _prefix, Shifts[pass], Widths[pass], _histogram);
    }

    /// <summary>Closes the current pass after every chunk was observed once.</summary>
    public void EndPass()
    {
        if (IsComplete) return;
        int pass = Pass;
        int bins = 1 << Widths[pass];

        // The k-th largest key sits at ascending rank n − k; walk the digits up until the count passes it.
        long remaining = _length - _keep - _countBelow;
        long cumulative = 0;
        int digit = 0;
        for (; digit < bins; digit++)
        {
            if (cumulative + _histogram[digit] > remaining) break;
            cumulative += _histogram[digit];
        }
        if (digit == bins)
            throw new InvalidOperationException("The chunks observed do not add up to the tensor length.");

        _countBelow += cumulative;
        _prefix = (_prefix << Widths[pass]) | digit;
        long equal = _histogram[digit];
        Array.Clear(_histogram);
        if (pass + 1 < Shifts.Length)
        {
            Pass = pass + 1;
            return;
        }

        long above = _length - _countBelow - equal;
        Finish(_prefix, _keep - above);
    }

    private void Finish(int key, long ties)
    {
        ThresholdKey = key;
        TiesToKeep = ties;
        IsComplete = true;
    }
}
