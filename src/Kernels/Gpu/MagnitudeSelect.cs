using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Weld.Kernels.Gpu;

/// <summary>A magnitude key found by the radix select on the device and how many keys lie below and at it.</summary>
/// <param name="Key">The magnitude key (float bits with the sign cleared).</param>
/// <param name="CountBelow">Elements whose key is smaller.</param>
/// <param name="CountEqual">Elements whose key equals <paramref name="Key"/>.</param>
internal readonly record struct GpuMagnitudeRank(int Key, long CountBelow, long CountEqual);

public sealed partial class GpuKernels
{
    // Digits from the top of the 31-bit key: bits 30..20, 19..10, 9..0 (the CPU's MagnitudeSelect passes).
    private static ReadOnlySpan<byte> SelectShifts => [20, 10, 0];
    private static ReadOnlySpan<byte> SelectWidths => [11, 10, 10];

    /// <inheritdoc />
    public TopKSelection KeepTopK(Span<float> values, long k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        int length = values.Length;
        if (k == 0)
        {
            values.Clear();
            return new TopKSelection(float.PositiveInfinity, 0, 0);
        }

        long kept = Math.Min(k, length);
        if (kept == 0)
            return new TopKSelection(float.PositiveInfinity, 0, 0);

        Span<int> words = MemoryMarshal.Cast<float, int>(values);
        using var call = new Call(this);
        ArrayView<int> bits = call.Upload(words);
        TopKSelection selection = KeepTopKOnDevice(call, bits, length, kept);
        if (kept < length)
            call.Download(bits, words);
        return selection;
    }

    /// <summary>
    /// Keeps the <paramref name="kept"/> (1 ≤ kept ≤ length) largest magnitudes of a device array of float bits in
    /// place, ties at the threshold the lowest indices (the device half of <see cref="KeepTopK"/>; the bench times it).
    /// </summary>
    internal TopKSelection KeepTopKOnDevice(in Call call, ArrayView<int> bits, long length, long kept)
    {
        // The k-th largest key sits at ascending rank n − k.
        GpuMagnitudeRank threshold = SelectRank(call, bits, length, length - kept);
        long above = length - threshold.CountBelow - threshold.CountEqual;
        long keptAtThreshold = kept - above;
        if (kept < length)
        {
            // Ties keep the lowest flat indices: tie numbers from keptAtThreshold on leave.
            MagnitudeCutArgument lower = PrepareCut(call, bits, length, threshold.Key, threshold.CountEqual,
                keptAtThreshold, dropLow: false);
            ApplyCuts(bits, length, lower, MagnitudeCutArgument.Absent);
        }

        return new TopKSelection(BitConverter.Int32BitsToSingle(threshold.Key), above, keptAtThreshold);
    }

    /// <inheritdoc />
    public void KeepMagnitudeBand(Span<float> values, long dropBottom, long dropTop)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dropBottom);
        ArgumentOutOfRangeException.ThrowIfNegative(dropTop);
        int length = values.Length;
        if (dropBottom + dropTop >= length)
        {
            values.Clear();
            return;
        }

        if (dropBottom == 0 && dropTop == 0)
            return;

        Span<int> words = MemoryMarshal.Cast<float, int>(values);
        using var call = new Call(this);
        ArrayView<int> bits = call.Upload(words);
        // Both ranks are found on the untouched data before any element is zeroed.
        MagnitudeCutArgument lower = MagnitudeCutArgument.Absent, upper = MagnitudeCutArgument.Absent;
        GpuMagnitudeRank? bottom = null, top = null;
        if (dropBottom > 0)
            bottom = SelectRank(call, bits, length, dropBottom - 1);
        if (dropTop > 0)
            top = SelectRank(call, bits, length, length - dropTop);

        if (bottom is { } b)
        {
            // The last element dropped at the bottom sits at rank dropBottom − 1; its ties leave lowest indices first.
            lower = PrepareCut(call, bits, length, b.Key, b.CountEqual, dropBottom - b.CountBelow, dropLow: true);
        }

        if (top is { } t)
        {
            // The first element dropped at the top sits at rank n − dropTop; its ties leave highest indices first.
            long droppedAtCut = t.CountBelow + t.CountEqual - (length - dropTop);
            upper = PrepareCut(call, bits, length, t.Key, t.CountEqual, t.CountEqual - droppedAtCut, dropLow: false);
        }

        ApplyCuts(bits, length, lower, upper);
        call.Download(bits, words);
    }

    /// <summary>
    /// The key at ascending position <paramref name="rank"/> (below <paramref name="length"/>) of a device array's
    /// magnitude keys: three histogram passes, each walked on the host to the digit holding the rank. Exact.
    /// </summary>
    internal GpuMagnitudeRank SelectRank(in Call call, ArrayView<int> bits, long length, long rank)
    {
        ArrayView<int> histogram = call.Rent<int>(MagnitudeHistogramKernel.SharedBins);
        var counts = new int[MagnitudeHistogramKernel.SharedBins];
        long countBelow = 0;
        int prefix = 0, digit = 0;
        for (int pass = 0; pass < SelectShifts.Length; pass++)
        {
            int width = SelectWidths[pass];
            int bins = 1 << width;
            ArrayView<int> passHistogram = histogram.SubView(0, bins);
            passHistogram.MemSetToZero(Stream);
            LaunchHistogram(bits, length, prefix, SelectShifts[pass], width, passHistogram);
            call.Download(passHistogram, counts.AsSpan(0, bins));

            // Walk the digits upward until the running count passes the rank left inside this prefix.
            long remaining = rank - countBelow, cumulative = 0;
            for (digit = 0; digit < bins; digit++)
            {
                if (cumulative + counts[digit] > remaining)
                    break;
                cumulative += counts[digit];
            }

            if (digit == bins)
                throw new InvalidOperationException($"Radix select lost rank {rank} of {length} (pass {pass}).");
            countBelow += cumulative;
            prefix = (prefix << width) | digit;
        }

        return new GpuMagnitudeRank(prefix, countBelow, counts[digit]);
    }
}
