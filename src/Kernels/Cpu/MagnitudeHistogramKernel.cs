using System.Buffers;
using System.Runtime.Intrinsics;

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
        bool wide = Vector512.IsHardwareAccelerated;
        ChunkedParallel.For(length, options, chunk =>
        {
            int* bits = (int*)address + ChunkedParallel.ChunkStart(chunk);
            equalPerChunk[chunk] = CountEqual(bits, ChunkedParallel.ChunkSize(chunk, length), key, wide);
        });
        long total = 0;
        for (int chunk = 0; chunk < ChunkedParallel.ChunkCount(length); chunk++)
            total += equalPerChunk[chunk];
        return total;
    }

    /// <summary>
    /// Keys equal to <paramref name="key"/> in one chunk: 512-bit vectors when <paramref name="wide"/>, then 256-bit, then
    /// scalars (an exact integer count whatever the split; tests call both widths). The streamed top-k's apply pass
    /// counts its threshold ties in every chunk with this.
    /// </summary>
    internal static int CountEqual(int* bits, int size, int key, bool wide)
    {
        int i = 0, equal = 0;
        if (wide)
        {
            Vector512<int> mask = Vector512.Create(KeyMask), wanted = Vector512.Create(key), count = Vector512<int>.Zero;
            for (; i <= size - Vector512<int>.Count; i += Vector512<int>.Count)
                count -= Vector512.Equals(Vector512.Load(bits + i) & mask, wanted); // a match is −1
            equal += Vector512.Sum(count);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> mask = Vector256.Create(KeyMask), wanted = Vector256.Create(key), count = Vector256<int>.Zero;
            for (; i <= size - Vector256<int>.Count; i += Vector256<int>.Count)
                count -= Vector256.Equals(Vector256.Load(bits + i) & mask, wanted);
            equal += Vector256.Sum(count);
        }
        for (; i < size; i++)
            equal += (bits[i] & KeyMask) == key ? 1 : 0;
        return equal;
    }

    /// <summary>Span form of <see cref="CountEqual(int*, int, int, bool)"/> for tests.</summary>
    internal static int CountEqual(ReadOnlySpan<float> values, int key, bool wide)
    {
        fixed (float* data = values)
            return CountEqual((int*)data, values.Length, key, wide);
    }
}
