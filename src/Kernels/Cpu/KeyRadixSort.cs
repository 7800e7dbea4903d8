namespace Weld.Kernels.Cpu;

/// <summary>
/// Ascending sort of magnitude keys (non-negative ints below 2^31) by three stable counting passes over the 11, 10 and
/// 10 low-to-high bit digits: the order <see cref="Array.Sort{T}(T[])"/> gives, in O(n) and without comparisons.
/// </summary>
/// <remarks>
/// The sampled select sorts its 32K-key sample once per tensor; a comparison sort of it cost ~1 ms, as much as the
/// partition pass of a 4M-element tensor. A digit every key shares (the top digit of keys within one binade) is skipped.
/// </remarks>
internal static class KeyRadixSort
{
    private const int LowBits = 11, MiddleBits = 10, HighBits = 10;
    private const int Bins = 1 << LowBits;

    /// <summary>Sorts <paramref name="keys"/> ascending in place; <paramref name="scratch"/> is at least as long.</summary>
    /// <exception cref="ArgumentException">A key is negative, or the scratch is too short.</exception>
    public static void Sort(Span<int> keys, Span<int> scratch)
    {
        if (scratch.Length < keys.Length)
            throw new ArgumentException("The scratch must be at least as long as the keys.", nameof(scratch));
        Span<int> counts = stackalloc int[3 * Bins];
        counts.Clear();
        Span<int> low = counts[..Bins], middle = counts.Slice(Bins, Bins), high = counts.Slice(2 * Bins, Bins);
        foreach (int key in keys)
        {
            if (key < 0)
                throw new ArgumentException("Magnitude keys are non-negative.", nameof(keys));
            low[key & (Bins - 1)]++;
            middle[(key >> LowBits) & ((1 << MiddleBits) - 1)]++;
            high[key >> (LowBits + MiddleBits)]++;
        }

        Span<int> from = keys, to = scratch[..keys.Length];
        int shift = 0;
        foreach (int bits in (ReadOnlySpan<int>)[LowBits, MiddleBits, HighBits])
        {
            Span<int> histogram = counts.Slice(shift == 0 ? 0 : shift == LowBits ? Bins : 2 * Bins, 1 << bits);
            if (histogram.IndexOf(keys.Length) < 0) // not every key in one bin: this digit orders something
            {
                // Exclusive prefix sums: where each digit's run starts.
                int start = 0;
                for (int digit = 0; digit < histogram.Length; digit++)
                {
                    int count = histogram[digit];
                    histogram[digit] = start;
                    start += count;
                }
                int mask = (1 << bits) - 1;
                foreach (int key in from)
                    to[histogram[(key >> shift) & mask]++] = key;
                Span<int> swap = from;
                from = to;
                to = swap;
            }
            shift += bits;
        }
        if (from != keys)
            from.CopyTo(keys);
    }
}
