using System.Runtime.InteropServices;
using ILGPU;

namespace Weld.Kernels.Gpu;

/// <remarks>One chunk of a streamed magnitude band: upload, the tie counts per tile of both keys, the cuts, download.</remarks>
public sealed partial class GpuKernels
{
    /// <inheritdoc />
    public (long LowerTiesDropped, long UpperTiesKept) KeepMagnitudeBandChunk(Span<float> values, int lowerKey, long lowerTiesToDrop,
        int upperKey, long upperTiesToKeep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(lowerKey);
        ArgumentOutOfRangeException.ThrowIfNegative(upperKey);
        ArgumentOutOfRangeException.ThrowIfNegative(lowerTiesToDrop);
        ArgumentOutOfRangeException.ThrowIfNegative(upperTiesToKeep);
        int length = values.Length;
        if (length == 0)
            return (0, 0);
        Span<int> words = MemoryMarshal.Cast<float, int>(values);
        using var call = new Call(this);
        ArrayView<int> bits = call.Upload(words);
        int[] lowerPerTile = CountKeyPerTile(call, bits, length, lowerKey);
        int[] upperPerTile = CountKeyPerTile(call, bits, length, upperKey);
        long lowerTies = 0, upperTies = 0;
        foreach (int count in lowerPerTile)
            lowerTies += count;
        foreach (int count in upperPerTile)
            upperTies += count;
        long dropped = Math.Min(lowerTiesToDrop, lowerTies), kept = Math.Min(upperTiesToKeep, upperTies);
        // Both cuts are prepared on the untouched data before any element is zeroed.
        MagnitudeCutArgument lower = PrepareCut(call, bits, length, lowerKey, lowerTies, dropped, dropLow: true, lowerPerTile);
        MagnitudeCutArgument upper = PrepareCut(call, bits, length, upperKey, upperTies, kept, dropLow: false, upperPerTile);
        ApplyCuts(bits, length, lower, upper);
        call.Download(bits, words);
        return (dropped, kept);
    }
}
