using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// Single-precision matrix multiplication on the CPU: SIMD register-blocked micro-kernels over cache-sized tiles,
/// tiles spread over cores.
/// </summary>
/// <remarks>
/// Every element of C is one dot product whose summation order depends only on <c>k</c> (SIMD lanes over
/// <c>p</c>, lanes reduced in a fixed tree, then the scalar tail), never on the tile or thread that computes it,
/// so the result is bit-identical for any degree of parallelism. Accumulation is in float32 (fused multiply-add
/// where the hardware has it).
/// </remarks>
public static class Gemm
{
    /// <summary>Rows of A per micro-kernel call.</summary>
    private const int RowBlock = 4;

    /// <summary>Rows of B (columns of C) per micro-kernel call.</summary>
    private const int ColumnBlock = 4;

    /// <summary>Rows of A per parallel tile: a multiple of <see cref="RowBlock"/>.</summary>
    private const int TileRows = 32;

    /// <summary>Columns of C per parallel tile: a multiple of <see cref="ColumnBlock"/>; keeps B's panel in L2.</summary>
    private const int TileColumns = 64;

    /// <summary>Below this many multiply-adds a single thread is faster than scheduling work items.</summary>
    private const long ParallelThreshold = 1L << 18;

    /// <summary>
    /// Computes <c>C = A·B</c> (or <c>C = A·Bᵀ</c> when <paramref name="transposeB"/>), all row-major.
    /// </summary>
    /// <param name="a">A, <paramref name="m"/> × <paramref name="k"/>.</param>
    /// <param name="b">B, <paramref name="k"/> × <paramref name="n"/>; or, when <paramref name="transposeB"/>,
    /// <paramref name="n"/> × <paramref name="k"/> (the layout of a Linear layer's <c>[out, in]</c> weight).</param>
    /// <param name="c">C, <paramref name="m"/> × <paramref name="n"/>; overwritten.</param>
    /// <param name="m">Rows of A and C.</param>
    /// <param name="k">Columns of A; the summed dimension.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="transposeB">Whether <paramref name="b"/> holds Bᵀ (n × k) rather than B (k × n).</param>
    /// <param name="maxDegreeOfParallelism">Most threads to use; -1 for all cores. Does not change the result.</param>
    /// <exception cref="ArgumentOutOfRangeException">A dimension is negative or a span is shorter than its matrix.</exception>
    public static void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n,
        bool transposeB = false, int maxDegreeOfParallelism = -1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfLessThan(a.Length, (long)m * k, nameof(a));
        ArgumentOutOfRangeException.ThrowIfLessThan(b.Length, (long)k * n, nameof(b));
        ArgumentOutOfRangeException.ThrowIfLessThan(c.Length, (long)m * n, nameof(c));
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), "must be -1 (all cores) or positive.");
        if (m == 0 || n == 0) return;
        if (k == 0)
        {
            c[..(m * n)].Clear();
            return;
        }

        if (transposeB)
        {
            MultiplyTransposed(a, b, c, m, k, n, maxDegreeOfParallelism);
            return;
        }

        // The kernels read both operands along k; packing Bᵀ once costs k·n moves against m·k·n multiply-adds.
        float[] packed = ArrayPool<float>.Shared.Rent(k * n);
        try
        {
            Transpose(b, packed, k, n);
            MultiplyTransposed(a, packed.AsSpan(0, k * n), c, m, k, n, maxDegreeOfParallelism);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packed);
        }
    }

    /// <summary>Writes the transpose of the row-major <paramref name="rows"/> × <paramref name="columns"/> matrix.</summary>
    private static void Transpose(ReadOnlySpan<float> source, Span<float> destination, int rows, int columns)
    {
        const int Block = 32; // square blocks keep both the read and the write side within a few cache lines
        for (int r0 = 0; r0 < rows; r0 += Block)
        {
            int r1 = Math.Min(r0 + Block, rows);
            for (int c0 = 0; c0 < columns; c0 += Block)
            {
                int c1 = Math.Min(c0 + Block, columns);
                for (int r = r0; r < r1; r++)
                    for (int col = c0; col < c1; col++)
                        destination[col * rows + r] = source[r * columns + col];
            }
        }
    }

    private static unsafe void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> bt, Span<float> c,
        int m, int k, int n, int maxDegreeOfParallelism)
    {
        int tileRowCount = (m + TileRows - 1) / TileRows;
        int tileColumnCount = (n + TileColumns - 1) / TileColumns;
        int tiles = tileRowCount * tileColumnCount;
        fixed (float* pa = a, pb = bt, pc = c)
        {
            var operands = new Operands(pa, pb, pc, m, k, n);
            bool parallel = tiles > 1 && maxDegreeOfParallelism != 1 && (long)m * k * n >= ParallelThreshold;
            if (!parallel)
            {
                for (int tile = 0; tile < tiles; tile++) RunTile(operands, tile, tileColumnCount);
                return;
            }

            var options = new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism };
            // Column-tile-major order: consecutive work items share one B panel (the larger operand for a Linear layer).
            Parallel.For(0, tiles, options, tile => RunTile(operands, tile, tileColumnCount));
        }
    }

    /// <summary>Raw operand pointers, valid while <see cref="MultiplyTransposed"/> holds them fixed.</summary>
    private readonly unsafe struct Operands(float* a, float* bt, float* c, int m, int k, int n)
    {
        public readonly float* A = a;
        public readonly float* Bt = bt;
        public readonly float* C = c;
        public readonly int M = m;
        public readonly int K = k;
        public readonly int N = n;
    }

    private static unsafe void RunTile(Operands o, int tile, int tileColumnCount)
    {
        int row0 = tile / tileColumnCount * TileRows;
        int column0 = tile % tileColumnCount * TileColumns;
        int rowEnd = Math.Min(row0 + TileRows, o.M);
        int columnEnd = Math.Min(column0 + TileColumns, o.N);
        int k = o.K;

        // Tiles start at multiples of the block sizes, so the block structure (and the per-element order) is global.
        int i = row0;
        for (; i + RowBlock <= rowEnd; i += RowBlock)
        {
            int j = column0;
            for (; j + ColumnBlock <= columnEnd; j += ColumnBlock)
                Kernel4x4(o.A + (long)i * k, o.Bt + (long)j * k, o.C + (long)i * o.N + j, k, o.N);
            for (; j < columnEnd; j++)
                for (int r = 0; r < RowBlock; r++)
                    o.C[(long)(i + r) * o.N + j] = Dot(o.A + (long)(i + r) * k, o.Bt + (long)j * k, k);
        }

        for (; i < rowEnd; i++)
            for (int j = column0; j < columnEnd; j++)
                o.C[(long)i * o.N + j] = Dot(o.A + (long)i * k, o.Bt + (long)j * k, k);
    }

    /// <summary>One dot product, in exactly the order <see cref="Kernel4x4"/> uses for each of its elements.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Dot(float* a, float* b, int k)
    {
        Vector256<float> acc = Vector256<float>.Zero;
        int p = 0;
        for (; p + Vector256<float>.Count <= k; p += Vector256<float>.Count)
            acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + p), Vector256.Load(b + p), acc);
        float sum = Reduce(acc);
        for (; p < k; p++) sum = MathF.FusedMultiplyAdd(a[p], b[p], sum);
        return sum;
    }

    /// <summary>Sixteen dot products (4 rows of A × 4 rows of Bᵀ) sharing every load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel4x4(float* a, float* b, float* c, int k, int ldc)
    {
        float* a0 = a, a1 = a + k, a2 = a + 2 * k, a3 = a + 3 * k;
        float* b0 = b, b1 = b + k, b2 = b + 2 * k, b3 = b + 3 * k;
        Vector256<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector256<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector256<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector256<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int p = 0;
        for (; p + Vector256<float>.Count <= k; p += Vector256<float>.Count)
        {
            Vector256<float> v0 = Vector256.Load(b0 + p), v1 = Vector256.Load(b1 + p);
            Vector256<float> v2 = Vector256.Load(b2 + p), v3 = Vector256.Load(b3 + p);
            Vector256<float> x = Vector256.Load(a0 + p);
            c00 = Vector256.FusedMultiplyAdd(x, v0, c00); c01 = Vector256.FusedMultiplyAdd(x, v1, c01);
            c02 = Vector256.FusedMultiplyAdd(x, v2, c02); c03 = Vector256.FusedMultiplyAdd(x, v3, c03);
            x = Vector256.Load(a1 + p);
            c10 = Vector256.FusedMultiplyAdd(x, v0, c10); c11 = Vector256.FusedMultiplyAdd(x, v1, c11);
            c12 = Vector256.FusedMultiplyAdd(x, v2, c12); c13 = Vector256.FusedMultiplyAdd(x, v3, c13);
            x = Vector256.Load(a2 + p);
            c20 = Vector256.FusedMultiplyAdd(x, v0, c20); c21 = Vector256.FusedMultiplyAdd(x, v1, c21);
            c22 = Vector256.FusedMultiplyAdd(x, v2, c22); c23 = Vector256.FusedMultiplyAdd(x, v3, c23);
            x = Vector256.Load(a3 + p);
            c30 = Vector256.FusedMultiplyAdd(x, v0, c30); c31 = Vector256.FusedMultiplyAdd(x, v1, c31);
            c32 = Vector256.FusedMultiplyAdd(x, v2, c32); c33 = Vector256.FusedMultiplyAdd(x, v3, c33);
        }

        Store(c, Reduce(c00), Reduce(c01), Reduce(c02), Reduce(c03), a0, b0, b1, b2, b3, p, k);
        Store(c + ldc, Reduce(c10), Reduce(c11), Reduce(c12), Reduce(c13), a1, b0, b1, b2, b3, p, k);
        Store(c + 2 * ldc, Reduce(c20), Reduce(c21), Reduce(c22), Reduce(c23), a2, b0, b1, b2, b3, p, k);
        Store(c + 3 * ldc, Reduce(c30), Reduce(c31), Reduce(c32), Reduce(c33), a3, b0, b1, b2, b3, p, k);
    }

    /// <summary>Adds the scalar tail (p..k) to four row sums and stores them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Store(float* c, float s0, float s1, float s2, float s3, float* a,
        float* b0, float* b1, float* b2, float* b3, int p, int k)
    {
        for (; p < k; p++)
        {
            float x = a[p];
            s0 = MathF.FusedMultiplyAdd(x, b0[p], s0);
            s1 = MathF.FusedMultiplyAdd(x, b1[p], s1);
            s2 = MathF.FusedMultiplyAdd(x, b2[p], s2);
            s3 = MathF.FusedMultiplyAdd(x, b3[p], s3);
        }

        c[0] = s0;
        c[1] = s1;
        c[2] = s2;
        c[3] = s3;
    }

    /// <summary>Sum of the lanes in a fixed pairwise order (halves, then quarters, then the last pair).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Reduce(Vector256<float> v)
    {
        Vector128<float> h = v.GetLower() + v.GetUpper();
        Vector128<float> q = h + Vector128.Shuffle(h, Vector128.Create(2, 3, 0, 1));
        return q.ToScalar() + q.GetElement(1);
    }
}
