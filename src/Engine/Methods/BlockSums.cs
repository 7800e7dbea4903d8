using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Float64 reductions cut at every tensor index that is a multiple of <see cref="TensorMergeInputs.ChunkAlignment"/>
/// and added piece by piece in index order onto a running sum. Streamed chunks start at such multiples, so a sum
/// gathered chunk by chunk adds exactly the pieces a whole-tensor sum adds, in the same order: the same bits.
/// </summary>
internal static class BlockSums
{
    private const int Block = TensorMergeInputs.ChunkAlignment;

    /// <summary><paramref name="sum"/> + Σ x[i]², where x[0] is tensor element <paramref name="offset"/>.</summary>
    public static double SumOfSquares(IMergeKernels kernels, ReadOnlySpan<float> x, long offset, double sum = 0)
    {
        for (int start = 0; start < x.Length;)
        {
            int length = PieceLength(offset + start, x.Length - start);
            sum += kernels.SumOfSquares(x.Slice(start, length));
            start += length;
        }
        return sum;
    }

    /// <summary>
    /// <paramref name="sum"/> + Σ x[i]² with x[i] read as 0 where <paramref name="selector"/> is ±0 (no selection when
    /// it is empty), where x[0] is tensor element <paramref name="offset"/>. <paramref name="x"/> is scratch the kernels
    /// may clear so.
    /// </summary>
    public static double SumOfSquares(IMergeKernels kernels, Span<float> x, ReadOnlySpan<float> selector, long offset, double sum = 0)
    {
        if (selector.IsEmpty) return SumOfSquares(kernels, x, offset, sum);
        for (int start = 0; start < x.Length;)
        {
            int length = PieceLength(offset + start, x.Length - start);
            sum += kernels.SumOfSquaresWhereSelected(x.Slice(start, length), selector.Slice(start, length));
            start += length;
        }
        return sum;
    }

    /// <summary>
    /// <paramref name="sums"/>[k] += <see cref="SumOfSquares(IMergeKernels, Span{float}, ReadOnlySpan{float}, long, double)"/>
    /// of row k of <paramref name="stacked"/> (rows of <paramref name="selector"/>'s length), the same bits, with every
    /// row summed in one sweep over the selector. The selector must not be empty.
    /// </summary>
    public static void SumsOfSquares(IMergeKernels kernels, Span<float> stacked, ReadOnlySpan<float> selector, long offset, double[] sums)
    {
        int rowLength = selector.Length, rows = sums.Length;
        if (rows == 0) return;
        for (int start = 0; start < rowLength;)
        {
            int length = PieceLength(offset + start, rowLength - start);
            kernels.AddSumsOfSquaresWhereSelected(stacked.Slice(start, (rows - 1) * rowLength + length), rowLength,
                selector.Slice(start, length), sums);
            start += length;
        }
    }

    /// <summary>
    /// <see cref="SumsOfSquares"/> with the selection given as a cut on the keys of <paramref name="keys"/> (the variances,
    /// index 0 = keys[0]) instead of a masked selector, the same bits for the same selection; the selection is also
    /// written to <paramref name="keptBits"/> (⌈n / 64⌉ words). <paramref name="offset"/> must be a multiple of 64
    /// (streamed chunks start at such multiples), so every piece starts on a word of the bits.
    /// </summary>
    public static void SumsOfSquaresWhereKept(IMergeKernels kernels, Span<float> stacked, ReadOnlySpan<float> keys, MagnitudeKeep keep,
        long offset, double[] sums, Span<ulong> keptBits)
    {
        if (offset % 64 != 0)
            throw new ArgumentException($"A piece of selection bits starts at element {offset}, not at a multiple of 64.", nameof(offset));
        int rowLength = keys.Length, rows = sums.Length;
        for (int start = 0; start < rowLength;)
        {
            int length = PieceLength(offset + start, rowLength - start);
            kernels.AddSumsOfSquaresWhereKept(stacked.Slice(start, Math.Max(0, (rows - 1) * rowLength + length)), rowLength,
                keys.Slice(start, length), keep.From(start), sums, keptBits.Slice(start / 64, (int)SelectionBits.WordCount(length)));
            start += length;
        }
    }

    /// <summary><paramref name="sum"/> + Σ a[i]·b[i], where a[0] and b[0] are tensor element <paramref name="offset"/>.</summary>
    public static double Dot(IMergeKernels kernels, ReadOnlySpan<float> a, ReadOnlySpan<float> b, long offset, double sum = 0)
    {
        for (int start = 0; start < a.Length;)
        {
            int length = PieceLength(offset + start, a.Length - start);
            sum += kernels.Dot(a.Slice(start, length), b.Slice(start, length));
            start += length;
        }
        return sum;
    }

    /// <summary>Elements from tensor index <paramref name="index"/> up to the next block boundary, at most <paramref name="left"/>.</summary>
    private static int PieceLength(long index, int left) => (int)Math.Min(left, Block - index % Block);
}
