using System.Buffers;

namespace Weld.Kernels.Cpu;

/// <remarks>
/// One chunk of a streamed magnitude band: the tie counts of the keys whose budget is not spent, then one masking pass
/// (no count at all once both budgets are spent).
/// </remarks>
public sealed unsafe partial class CpuKernels
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
        if (lowerTiesToDrop == 0 && upperTiesToKeep == 0)
        {
            // Both tie budgets spent: the lower cut's ties all stay, the upper cut's all leave; nothing to count.
            fixed (float* data = values)
                MagnitudeMask.ApplyKeyRange(data, length, lowerKey - 1, upperKey - 1, _parallel);
            return (0, 0);
        }
        int chunks = ChunkedParallel.ChunkCount(length);
        int[] lowerEqual = ArrayPool<int>.Shared.Rent(chunks);
        int[] upperEqual = ArrayPool<int>.Shared.Rent(chunks);
        try
        {
            fixed (float* data = values)
            {
                // A lower cut that drops no tie keeps them all whatever their counts (the mask reads no count of it).
                long lowerTies = 0;
                if (lowerTiesToDrop > 0)
                    lowerTies = MagnitudeHistogramKernel.CountEqual(data, length, lowerKey, lowerEqual, _parallel);
                else
                    Array.Clear(lowerEqual, 0, chunks);
                long upperTies = MagnitudeHistogramKernel.CountEqual(data, length, upperKey, upperEqual, _parallel);
                long dropped = Math.Min(lowerTiesToDrop, lowerTies), kept = Math.Min(upperTiesToKeep, upperTies);
                var lower = new MagnitudeCut(lowerKey, 0, dropped, lowerEqual);
                var upper = new MagnitudeCut(upperKey, kept, long.MaxValue, upperEqual);
                MagnitudeMask.Apply(data, length, lower, upper, _parallel);
                return (dropped, kept);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(lowerEqual);
            ArrayPool<int>.Shared.Return(upperEqual);
        }
    }
}
