using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// Float64 reductions over one chunk. The summation order inside a chunk is fixed by explicit 256-bit vectors
/// (emulated where the hardware lacks them), so a chunk's partial has the same bits on every machine; chunks are
/// combined in chunk order by the caller.
/// </summary>
internal static unsafe class ReductionKernels
{
    /// <summary>Σ a[i]·b[i] over the chunk; each product of two floats is exact in float64.</summary>
    public static double Dot(float* a, float* b, int count)
    {
        Vector256<double> lower = Vector256<double>.Zero;
        Vector256<double> upper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            (Vector256<double> aLow, Vector256<double> aHigh) = Vector256.Widen(Vector256.Load(a + i));
            (Vector256<double> bLow, Vector256<double> bHigh) = Vector256.Widen(Vector256.Load(b + i));
            lower += aLow * bLow;
            upper += aHigh * bHigh;
        }

        double sum = HorizontalSum(lower + upper);
        for (; i < count; i++)
            sum += (double)a[i] * b[i];
        return sum;
    }

    /// <summary>Σ x[i]² over the chunk.</summary>
    public static double SumOfSquares(float* x, int count)
    {
        Vector256<double> lower = Vector256<double>.Zero;
        Vector256<double> upper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.Load(x + i));
            lower += low * low;
            upper += high * high;
        }

        double sum = HorizontalSum(lower + upper);
        for (; i < count; i++)
            sum += (double)x[i] * x[i];
        return sum;
    }

    /// <summary>
    /// Σ x[i]² over the chunk with x[i] read as +0 where selector[i] is ±0: <see cref="SumOfSquares"/>'s lanes and order,
    /// so the bits of clearing first and summing after.
    /// </summary>
    public static double SumOfSquaresWhereSelected(float* x, float* selector, int count)
    {
        Vector256<double> lower = Vector256<double>.Zero;
        Vector256<double> upper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> dropped = Vector256.Equals(Vector256.Load(selector + i), Vector256<float>.Zero);
            Vector256<float> kept = Vector256.ConditionalSelect(dropped, Vector256<float>.Zero, Vector256.Load(x + i));
            (Vector256<double> low, Vector256<double> high) = Vector256.Widen(kept);
            lower += low * low;
            upper += high * high;
        }

        double sum = HorizontalSum(lower + upper);
        for (; i < count; i++)
        {
            float kept = selector[i] == 0f ? 0f : x[i];
            sum += (double)kept * kept;
        }
        return sum;
    }

    /// <summary>
    /// <see cref="SumOfSquaresWhereSelected"/> of <paramref name="rows"/> rows <paramref name="rowStride"/> apart into
    /// <paramref name="sums"/>[k], each with that kernel's lanes and order: two rows per sweep share the selector's load
    /// and compare, and their four accumulator chains overlap (one row's two chains wait on the add latency).
    /// </summary>
    public static void SumsOfSquaresWhereSelected(float* x, long rowStride, int rows, float* selector, int count, double* sums)
    {
        int k = 0;
        for (; k + 1 < rows; k += 2)
            SumOfSquaresWhereSelectedPair(x + k * rowStride, x + (k + 1) * rowStride, selector, count, out sums[k], out sums[k + 1]);
        if (k < rows)
            sums[k] = SumOfSquaresWhereSelected(x + k * rowStride, selector, count);
    }

    /// <summary>Two rows of <see cref="SumsOfSquaresWhereSelected"/> in one sweep.</summary>
    private static void SumOfSquaresWhereSelectedPair(float* x, float* y, float* selector, int count, out double xSum, out double ySum)
    {
        Vector256<double> xLower = Vector256<double>.Zero, xUpper = Vector256<double>.Zero;
        Vector256<double> yLower = Vector256<double>.Zero, yUpper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> dropped = Vector256.Equals(Vector256.Load(selector + i), Vector256<float>.Zero);
            (Vector256<double> xLow, Vector256<double> xHigh) = Vector256.Widen(Vector256.ConditionalSelect(dropped, Vector256<float>.Zero, Vector256.Load(x + i)));
            (Vector256<double> yLow, Vector256<double> yHigh) = Vector256.Widen(Vector256.ConditionalSelect(dropped, Vector256<float>.Zero, Vector256.Load(y + i)));
            xLower += xLow * xLow;
            xUpper += xHigh * xHigh;
            yLower += yLow * yLow;
            yUpper += yHigh * yHigh;
        }

        xSum = HorizontalSum(xLower + xUpper);
        ySum = HorizontalSum(yLower + yUpper);
        for (; i < count; i++)
        {
            bool isDropped = selector[i] == 0f;
            float xKept = isDropped ? 0f : x[i], yKept = isDropped ? 0f : y[i];
            xSum += (double)xKept * xKept;
            ySum += (double)yKept * yKept;
        }
    }

    /// <summary>
    /// <see cref="SumsOfSquaresWhereSelected"/> with the selection tested on the keys of <paramref name="keys"/> against
    /// <paramref name="keep"/> instead of read from a masked selector (the same lanes, order and bits for the same
    /// selection), and written to <paramref name="bits"/> (byte ⌊i / 8⌋, bit i mod 8; null: not written) for the mix.
    /// </summary>
    public static void SumsOfSquaresWhereKept(float* x, long rowStride, int rows, int* keys, int count, in KeptByKey keep,
        byte* bits, double* sums)
    {
        if (rows == 0)
        {
            if (bits != null) PackKept(keys, count, keep, bits);
            return;
        }
        int k = 0;
        for (; k + 1 < rows; k += 2)
            SumOfSquaresWhereKeptPair(x + k * rowStride, x + (k + 1) * rowStride, keys, count, keep, k == 0 ? bits : null,
                out sums[k], out sums[k + 1]);
        if (k < rows)
            sums[k] = SumOfSquaresWhereKept(x + k * rowStride, keys, count, keep, k == 0 ? bits : null);
    }

    /// <summary><see cref="SumOfSquaresWhereSelected"/>'s lanes and order, the selection tested on the keys.</summary>
    private static double SumOfSquaresWhereKept(float* x, int* keys, int count, in KeptByKey keep, byte* bits)
    {
        Vector256<double> lower = Vector256<double>.Zero, upper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> dropped = keep.Drops256(keys, i);
            if (bits != null) bits[i >> 3] = (byte)~dropped.ExtractMostSignificantBits();
            (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.ConditionalSelect(dropped, Vector256<float>.Zero, Vector256.Load(x + i)));
            lower += low * low;
            upper += high * high;
        }

        double sum = HorizontalSum(lower + upper);
        int tail = 0;
        for (; i < count; i++)
        {
            bool isDropped = keep.Drops(i, keys[i]);
            if (!isDropped) tail |= 1 << (i & 7);
            float kept = isDropped ? 0f : x[i];
            sum += (double)kept * kept;
        }
        if (bits != null && (count & 7) != 0) bits[count >> 3] = (byte)tail;
        return sum;
    }

    /// <summary>Two rows of <see cref="SumsOfSquaresWhereKept"/> in one sweep (<see cref="SumOfSquaresWhereSelectedPair"/>'s chains).</summary>
    private static void SumOfSquaresWhereKeptPair(float* x, float* y, int* keys, int count, in KeptByKey keep, byte* bits,
        out double xSum, out double ySum)
    {
        Vector256<double> xLower = Vector256<double>.Zero, xUpper = Vector256<double>.Zero;
        Vector256<double> yLower = Vector256<double>.Zero, yUpper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            Vector256<float> dropped = keep.Drops256(keys, i);
            if (bits != null) bits[i >> 3] = (byte)~dropped.ExtractMostSignificantBits();
            (Vector256<double> xLow, Vector256<double> xHigh) = Vector256.Widen(Vector256.ConditionalSelect(dropped, Vector256<float>.Zero, Vector256.Load(x + i)));
            (Vector256<double> yLow, Vector256<double> yHigh) = Vector256.Widen(Vector256.ConditionalSelect(dropped, Vector256<float>.Zero, Vector256.Load(y + i)));
            xLower += xLow * xLow;
            xUpper += xHigh * xHigh;
            yLower += yLow * yLow;
            yUpper += yHigh * yHigh;
        }

        xSum = HorizontalSum(xLower + xUpper);
        ySum = HorizontalSum(yLower + yUpper);
        int tail = 0;
        for (; i < count; i++)
        {
            bool isDropped = keep.Drops(i, keys[i]);
            if (!isDropped) tail |= 1 << (i & 7);
            float xKept = isDropped ? 0f : x[i], yKept = isDropped ? 0f : y[i];
            xSum += (double)xKept * xKept;
            ySum += (double)yKept * yKept;
        }
        if (bits != null && (count & 7) != 0) bits[count >> 3] = (byte)tail;
    }

    /// <summary>Only the bits of <see cref="SumsOfSquaresWhereKept"/> (no rows to sum).</summary>
    private static void PackKept(int* keys, int count, in KeptByKey keep, byte* bits)
    {
        for (int start = 0; start < count; start += 8)
        {
            int tail = 0;
            for (int i = start; i < Math.Min(count, start + 8); i++)
                if (!keep.Drops(i, keys[i])) tail |= 1 << (i & 7);
            bits[start >> 3] = (byte)tail;
        }
    }

    public static double SumOfAbs(float* x, int count)
    {
        Vector256<double> lower = Vector256<double>.Zero;
        Vector256<double> upper = Vector256<double>.Zero;
        int i = 0;
        for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
        {
            (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.Abs(Vector256.Load(x + i)));
            lower += low;
            upper += high;
        }

        double sum = HorizontalSum(lower + upper);
        for (; i < count; i++)
            sum += Math.Abs((double)x[i]);
        return sum;
    }

    /// <summary>
    /// <see cref="SumOfAbs"/>'s running sum, for a kernel that sums a chunk inside its own loop: <see cref="Add"/> every
    /// group of 8 floats from the chunk's start in index order, then <see cref="Finish"/> with the last count mod 8
    /// elements: the bits of SumOfAbs over the same chunk (the same vector additions in the same order).
    /// </summary>
    internal struct AbsSum
    {
        private Vector256<double> _lower;
        private Vector256<double> _upper;

        /// <summary>The running sum of a kernel that kept the two accumulators in its own locals.</summary>
        public AbsSum(Vector256<double> lower, Vector256<double> upper)
        {
            _lower = lower;
            _upper = upper;
        }

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        public void Add(Vector256<float> group)
        {
            (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.Abs(group));
            _lower += low;
            _upper += high;
        }

        public readonly double Finish(float* tail, int count)
        {
            double sum = HorizontalSum(_lower + _upper);
            for (int i = 0; i < count; i++)
                sum += Math.Abs((double)tail[i]);
            return sum;
        }
    }

    // Lane order spelled out: Vector256.Sum leaves its order to the implementation.
    private static double HorizontalSum(Vector256<double> v) =>
        (v.GetElement(0) + v.GetElement(1)) + (v.GetElement(2) + v.GetElement(3));
}
