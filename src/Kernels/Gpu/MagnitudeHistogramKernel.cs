using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<int>, long, int, int, int, ArrayView<int>>? _magnitudeHistogram;

    /// <inheritdoc />
    public void MagnitudeHistogram(ReadOnlySpan<float> values, int prefix, int shift, int width, Span<long> histogram)
    {
        if (width is < 1 or > 16 || shift < 0 || shift + width > 31)
            throw new ArgumentOutOfRangeException(nameof(width), width, "Digits are 1 to 16 bits inside the 31-bit magnitude key.");
        int bins = 1 << width;
        if (histogram.Length < bins)
            throw new ArgumentException($"The histogram needs {bins} entries.", nameof(histogram));
        if (values.Length == 0)
            return;
        using var call = new Call(this);
        ArrayView<int> bits = call.Upload(MemoryMarshal.Cast<float, int>(values));
        ArrayView<int> counts = call.RentZeroed<int>(bins);
        LaunchHistogram(bits, values.Length, prefix, shift, width, counts);
        var host = new int[bins];
        call.Download(counts, host);
        for (int digit = 0; digit < bins; digit++)
            histogram[digit] += host[digit];
    }

    /// <inheritdoc />
    public long KeepAboveMagnitude(Span<float> values, int thresholdKey, long tiesToKeep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(thresholdKey);
        ArgumentOutOfRangeException.ThrowIfNegative(tiesToKeep);
        int length = values.Length;
        if (length == 0)
            return 0;
        Span<int> words = MemoryMarshal.Cast<float, int>(values);
        using var call = new Call(this);
        ArrayView<int> bits = call.Upload(words);
        int[] perTile = CountKeyPerTile(call, bits, length, thresholdKey);
        long equal = 0;
        foreach (int count in perTile)
            equal += count;
        long kept = Math.Min(tiesToKeep, equal);
        // A lower cut at the threshold: keys below leave, ties from tie number `kept` on leave.
        MagnitudeCutArgument lower = PrepareCut(call, bits, length, thresholdKey, equal, kept, dropLow: false, perTile);
        ApplyCuts(bits, length, lower, MagnitudeCutArgument.Absent);
        call.Download(bits, words);
        return kept;
    }

    /// <summary>Adds to <paramref name="histogram"/> (zeroed by the caller) the digit counts of the keys under <paramref name="prefix"/>.</summary>
    internal void LaunchHistogram(ArrayView<int> bits, long length, int prefix, int shift, int width, ArrayView<int> histogram) =>
        Load(ref _magnitudeHistogram, MagnitudeHistogramKernel.Count)(Stream, GridFor(length), bits, length, prefix, shift, width, histogram);
}

/// <summary>
/// Counting pass of the radix select over magnitude keys (bits(x) &amp; 0x7FFFFFFF): the digit histogram of the
/// keys whose bits above the digit equal the prefix found so far. Exact integer counts, so any grouping of the
/// elements and any order of the atomic adds give the same histogram.
/// </summary>
internal static class MagnitudeHistogramKernel
{
    /// <summary>Digits up to this many bins count in shared memory first (11-bit digits: 8 KiB).</summary>
    public const int SharedBins = 1 << 11;

    private const int KeyMask = 0x7FFFFFFF;

    /// <summary>
    /// histogram[d] += #{i : key_i &gt;&gt; (shift + width) == prefix and (key_i &gt;&gt; shift) mod 2^width == d};
    /// a first pass (shift + width == 31) counts every key. Each group counts into its own shared-memory histogram
    /// and adds its non-zero bins to the global one; wider digits (up to 16 bits) count straight into global memory.
    /// </summary>
    public static void Count(ArrayView<int> bits, long length, int prefix, int shift, int width, ArrayView<int> histogram)
    {
        ArrayView<int> local = SharedMemory.Allocate<int>(SharedBins);
        int bins = 1 << width;
        int digitMask = bins - 1;
        int prefixShift = shift + width;
        bool everyKey = prefixShift >= 31;
        bool inShared = bins <= SharedBins;
        if (inShared)
        {
            for (int b = Group.IdxX; b < bins; b += Group.DimX)
                local[b] = 0;
        }

        Group.Barrier();
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            int key = bits[i] & KeyMask;
            if (everyKey || (key >> prefixShift) == prefix)
            {
                int digit = (key >> shift) & digitMask;
                if (inShared)
                    Atomic.Add(ref local[digit], 1);
                else
                    Atomic.Add(ref histogram[digit], 1);
            }
        }

        Group.Barrier();
        if (inShared)
        {
            for (int b = Group.IdxX; b < bins; b += Group.DimX)
            {
                int count = local[b];
                if (count != 0)
                    Atomic.Add(ref histogram[b], count);
            }
        }
    }
}
