using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>One fiber of <see cref="IMergeKernels.SampleByMagnitudeRank"/>: a stable sort by magnitude, then the draws.</summary>
/// <remarks>
/// The sort is an LSD radix sort on the 31 magnitude bits (three passes of 11, 11 and 9 bits) of (magnitude, position)
/// pairs laid out in position order: being stable, it gives exactly the order of a comparison sort of the pairs (the
/// same ranks, ties by lowest position), in linear time instead of a full comparison sort per fiber.
/// </remarks>
internal static unsafe class MagnitudeRankSampling
{
    /// <summary>The keep probabilities of one call (they do not depend on the fiber).</summary>
    public readonly record struct Probabilities(float Low, float Epsilon, float Single, bool Divide);

    /// <summary>
    /// Samples the fiber that starts at flat index <paramref name="first"/>; <paramref name="order"/> is scratch of at
    /// least 2 × <paramref name="length"/> entries; <paramref name="firstIndex"/> is the tensor index of <c>values[0]</c> (for the draws).
    /// </summary>
    public static void SampleFiber(float* values, long first, int length, int stride, in Probabilities probabilities,
        PhiloxKey key, long firstIndex, ulong[] order)
    {
        // (magnitude key, position) pairs sort like a stable sort by magnitude: the sorted position is the rank − 1.
        for (int r = 0; r < length; r++)
        {
            uint magnitude = BitConverter.SingleToUInt32Bits(values[first + (long)r * stride]) & 0x7FFFFFFFu;
            order[r] = ((ulong)magnitude << 32) | (uint)r;
        }
        SortByKey(order, length);
        // The draws in position order, into the sort's spent scratch half: one Philox block serves the (up to) four
        // consecutive tensor indices it covers instead of being recomputed for each element in sorted order.
        Span<ulong> draws = order.AsSpan(length, length);
        long blockOf = -1;
        Philox4x32Block block = default;
        for (int r = 0; r < length; r++)
        {
            long tensorIndex = firstIndex + first + (long)r * stride;
            if (tensorIndex >> 2 != blockOf)
            {
                blockOf = tensorIndex >> 2;
                block = Philox4x32.StreamBlock(key, (ulong)blockOf);
            }
            draws[r] = block[(int)(tensorIndex & 3)];
        }
        float span = length - 1;
        for (int s = 0; s < length; s++)
        {
            int r = (int)(uint)order[s];
            long index = first + (long)r * stride;
            float p = length == 1 ? probabilities.Single : probabilities.Low + s / span * 2f * probabilities.Epsilon;
            float value = values[index];
            bool keep = Philox4x32.ToUniform((uint)draws[r]) < p;
            values[index] = keep ? (probabilities.Divide ? value / p : value) : 0f;
        }
    }

    /// <summary>Below this length a comparison sort is cheaper than three radix passes and their histograms.</summary>
    private const int RadixMinimum = 256;

    /// <summary>
    /// Sorts <c>order[0..length)</c> ascending; every entry is (31-bit key &lt;&lt; 32) | position and the entries are
    /// distinct, so the result is the unique ascending order (what <see cref="Array.Sort{T}(T[], int, int)"/> gives).
    /// <c>order[length..2·length)</c> is scratch.
    /// </summary>
    internal static void SortByKey(ulong[] order, int length)
    {
        if (length < RadixMinimum)
        {
            Array.Sort(order, 0, length);
            return;
        }
        // The pairs were written in position order, so a stable sort by key alone is the sort of the pairs.
        Span<int> counts = stackalloc int[2048 + 2048 + 512];
        counts.Clear();
        Span<int> c0 = counts[..2048], c1 = counts.Slice(2048, 2048), c2 = counts[4096..];
        Span<ulong> a = order.AsSpan(0, length), b = order.AsSpan(length, length);
        foreach (ulong e in a)
        {
            uint key = (uint)(e >> 32);
            c0[(int)(key & 0x7FF)]++;
            c1[(int)((key >> 11) & 0x7FF)]++;
            c2[(int)(key >> 22)]++;
        }
        // A pass whose digit is the same for every entry changes nothing: skip it (common for the exponent's digit).
        bool moved = false;
        if (Pass(a, b, c0, 0, length)) { moved = true; Swap(ref a, ref b); }
        if (Pass(a, b, c1, 11, length)) { moved = true; Swap(ref a, ref b); }
        if (Pass(a, b, c2, 22, length)) { moved = true; Swap(ref a, ref b); }
        if (moved && a != order.AsSpan(0, length)) a.CopyTo(order.AsSpan(0, length));
    }

    private static void Swap(ref Span<ulong> a, ref Span<ulong> b)
    {
        Span<ulong> t = a;
        a = b;
        b = t;
    }

    /// <summary>One stable counting pass from <paramref name="from"/> into <paramref name="to"/>; false (and nothing moved) when one bucket holds everything.</summary>
    private static bool Pass(ReadOnlySpan<ulong> from, Span<ulong> to, Span<int> counts, int shift, int length)
    {
        int sum = 0;
        for (int d = 0; d < counts.Length; d++)
        {
            int c = counts[d];
            if (c == length) return false;
            counts[d] = sum;
            sum += c;
        }
        int mask = counts.Length - 1;
        foreach (ulong e in from)
        {
            int digit = (int)((uint)(e >> 32) >> shift) & mask;
            to[counts[digit]++] = e;
        }
        return true;
    }
}
