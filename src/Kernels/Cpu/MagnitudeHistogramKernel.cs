using System.Buffers;

namespace Weld.Kernels.Cpu;

/// <summary>Counting passes over magnitude keys for a top-k streamed in chunks.</summary>
internal static unsafe class MagnitudeHistogramKernel
{
    private const int KeyMask = MagnitudeSelect.KeyMask;

    // Elements per worker histogram: large enough that clearing and merging up to 64K bins is amortised.
    private const int SliceLength = 1 << 18;

    /// <summary>Adds the digit counts of the elements matching <paramref name="prefix"/> to <paramref name="histogram"/>.</summary>
    public static void Add(float* values, int length, int prefix, int shift, int width, long* histogram, ParallelOptions options)
    {
        int bins = 1 << width;
        int slices = (length + SliceLength - 1) / SliceLength;
        int prefixShift = shift + width;
        int digitMask = bins - 1;
        nint address = (nint)values;
        nint target = (nint)histogram;
        object gate = new();
        ChunkedParallel.ForEachIndex(slices, options, slice =>
        {
            int[] local = ArrayPool<int>.Shared.Rent(bins);
            try
            {
                Array.Clear(local, 0, bins);
                int* bits = (int*)address + (long)slice * SliceLength;
                int size = Math.Min(SliceLength, length - slice * SliceLength);
                fixed (int* counts = local)
                {
                    if (prefixShift >= 31)
                    {
                        for (int i = 0; i < size; i++)
                            counts[(bits[i] & KeyMask) >> shift]++;
                    }
                    else
                    {
                        MagnitudeSelect.CountUnderPrefix(bits, size, shift, prefixShift, prefix, digitMask, counts);
                    }
                }

                // Integer sums: the merge order cannot change the result.
                lock (gate)
                {
                    long* sum = (long*)target;
                    for (int d = 0; d < bins; d++)
                        sum[d] += local[d];
                }
            }
            finally
            {
                ArrayPool<int>.Shared.Return(local);
            }
        });
    }

    /// <summary>Counts elements whose key equals <paramref name="key"/>, per <see cref="ChunkedParallel"/> chunk and in all.</summary>
    public static long CountEqual(float* values, int length, int key, int[] equalPerChunk, ParallelOptions options)
    {
        nint address = (nint)values;
        ChunkedParallel.For(length, options, chunk =>
        {
            int* bits = (int*)address + ChunkedParallel.ChunkStart(chunk);
            int size = ChunkedParallel.ChunkSize(chunk, length);
            int equal = 0;
            for (int i = 0; i < size; i++)
                equal += (bits[i] & KeyMask) == key ? 1 : 0;
            equalPerChunk[chunk] = equal;
        });
        long total = 0;
        for (int chunk = 0; chunk < ChunkedParallel.ChunkCount(length); chunk++)
            total += equalPerChunk[chunk];
        return total;
    }
}
