using MathNet.Numerics.LinearAlgebra;
using Weld.Kernels;
using Weld.Kernels.Cpu;
using Weld.Kernels.Random;

namespace Weld.Engine.Compression;

/// <summary>
/// Truncated SVD by randomized range finding (Halko, Martinsson and Tropp, "Finding structure with randomness",
/// SIAM Review 2011, algorithms 4.4 and 5.1): a Gaussian sketch Y = A·Ω of r + p columns, q power iterations
/// Y = A·(Aᵀ·Y) with re-orthonormalisation between the products, Q = qr(Y), B = Qᵀ·A, a small dense SVD of B,
/// U = Q·Ũ. Every product with A goes through an <see cref="IGemm"/> (Weld's <see cref="Gemm"/> on the CPU by default, the GPU GEMM on a GPU); only the (r + p)² factorisation uses
/// MathNet.Numerics.
/// </summary>
/// <remarks>
/// The sketch Ω is drawn from Philox4x32-10 keyed by the seed (Box–Muller), and every step is sequential or
/// bit-identical across thread counts, so the result is a pure function of (A, rank, seed, oversampling, iterations).
/// The basis is kept transposed (rows, not columns) so that Gram–Schmidt walks contiguous memory.
/// </remarks>
public static class RandomizedSvd
{
    /// <summary>Default oversampling p: extra sketch columns beyond the rank (HMT recommend 5–10).</summary>
    public const int DefaultOversampling = 10;

    /// <summary>Default number of power iterations q (sharpens a slowly decaying spectrum).</summary>
    public const int DefaultPowerIterations = 2;

    /// <summary>Counter word 2 of the sketch's Philox stream: keeps it apart from the merge kernels' streams under the same seed.</summary>
    private const uint SketchStream = 0x5344_5653; // "SVDS"

    /// <summary>The top <paramref name="rank"/> singular triplets of the row-major <paramref name="rows"/> × <paramref name="columns"/> matrix <paramref name="a"/>.</summary>
    /// <param name="a">The matrix, row-major float32.</param>
    /// <param name="rows">Rows (m).</param>
    /// <param name="columns">Columns (n).</param>
    /// <param name="rank">Triplets to keep (r); at most min(m, n).</param>
    /// <param name="seed">Seed of the Gaussian sketch.</param>
    /// <param name="oversampling">Extra sketch columns p (clamped so r + p ≤ min(m, n)).</param>
    /// <param name="powerIterations">Power iterations q.</param>
    /// <param name="maxDegreeOfParallelism">Most threads for the products; -1 for all cores. Does not change the result.</param>
    /// <returns>The truncated decomposition.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A dimension, the rank, p or q is out of range, or <paramref name="a"/> is short.</exception>
    public static TruncatedSvd Compute(ReadOnlySpan<float> a, int rows, int columns, int rank, ulong seed,
        int oversampling = DefaultOversampling, int powerIterations = DefaultPowerIterations, int maxDegreeOfParallelism = -1) =>
        Compute(a, rows, columns, rank, seed, new CpuGemm(maxDegreeOfParallelism), oversampling, powerIterations);

    /// <summary>
    /// The top <paramref name="rank"/> singular triplets of <paramref name="a"/>, with every product against A (and the
    /// two small products that assemble U and Vᵀ) run by <paramref name="gemm"/>: <see cref="CpuGemm"/> gives the
    /// same bits as the overload above, a GPU GEMM (<see cref="GemmBackends"/>) agrees to float rounding.
    /// </summary>
    /// <param name="a">The matrix, row-major float32.</param>
    /// <param name="rows">Rows (m).</param>
    /// <param name="columns">Columns (n).</param>
    /// <param name="rank">Triplets to keep (r); at most min(m, n).</param>
    /// <param name="seed">Seed of the Gaussian sketch.</param>
    /// <param name="gemm">Where the matrix products run.</param>
    /// <param name="oversampling">Extra sketch columns p (clamped so r + p ≤ min(m, n)).</param>
    /// <param name="powerIterations">Power iterations q.</param>
    /// <returns>The truncated decomposition.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A dimension, the rank, p or q is out of range, or <paramref name="a"/> is short.</exception>
    public static TruncatedSvd Compute(ReadOnlySpan<float> a, int rows, int columns, int rank, ulong seed, IGemm gemm,
        int oversampling = DefaultOversampling, int powerIterations = DefaultPowerIterations)
    {
        ArgumentNullException.ThrowIfNull(gemm);
        ValidateShape(a, rows, columns, rank);
        ArgumentOutOfRangeException.ThrowIfNegative(oversampling);
        ArgumentOutOfRangeException.ThrowIfNegative(powerIterations);
        int m = rows, n = columns;
        if (rank == 0) return new TruncatedSvd([], [], [], m, n, 0);
        int l = Math.Min(rank + oversampling, Math.Min(m, n));

        // Ωᵀ (l × n); Yᵀ = Ωᵀ·Aᵀ (l × m): A itself is the "Bᵀ" operand, so no transpose is materialised.
        float[] omegaT = new float[l * n];
        FillGaussian(omegaT, seed);
        float[] qt = new float[l * m];
        gemm.Multiply(omegaT, a, qt, l, n, m, transposeB: true);
        OrthonormalizeRows(qt, l, m, null);

        float[] zt = omegaT; // l × n, reused for Zᵀ = Qᵀ·A
        for (int iteration = 0; iteration < powerIterations; iteration++)
        {
            // Orthonormalising after each product keeps the small singular directions from drowning in rounding (HMT alg. 4.4).
            gemm.Multiply(qt, a, zt, l, m, n, transposeB: false);
            OrthonormalizeRows(zt, l, n, null);
            gemm.Multiply(zt, a, qt, l, n, m, transposeB: true);
            OrthonormalizeRows(qt, l, m, null);
        }

        // B = Qᵀ·A (l × n). Its rows factor as B = Rᵀ·W (W orthonormal rows, R upper triangular l × l), so the SVD of
        // the small Rᵀ = Ur·Σ·Vrᵀ gives B = Ur·Σ·(Vrᵀ·W) without ever forming an n × n factor.
        float[] w = zt;
        gemm.Multiply(qt, a, w, l, m, n, transposeB: false);
        var r = new double[l * l];
        OrthonormalizeRows(w, l, n, r);
        var rt = Matrix<double>.Build.Dense(l, l, (i, j) => r[j * l + i]);
        var small = rt.Svd(computeVectors: true);

        var urT = new float[rank * l]; // first rank rows of Urᵀ
        var vrT = new float[rank * l]; // first rank rows of Vrᵀ
        var s = new float[rank];
        for (int k = 0; k < rank; k++)
        {
            s[k] = (float)small.S[k];
            for (int j = 0; j < l; j++)
            {
                urT[k * l + j] = (float)small.U[j, k];
                vrT[k * l + j] = (float)small.VT[k, j];
            }
        }

        var vt = new float[rank * n];
        gemm.Multiply(vrT, w, vt, rank, l, n, transposeB: false);
        var ut = new float[rank * m]; // Uᵀ = Urᵀ·Qᵀ
        gemm.Multiply(urT, qt, ut, rank, l, m, transposeB: false);
        var u = new float[m * rank];
        for (int k = 0; k < rank; k++)
            for (int i = 0; i < m; i++)
                u[i * rank + k] = ut[k * m + i];
        return new TruncatedSvd(u, s, vt, m, n, rank);
    }

    /// <summary>
    /// Fills <paramref name="destination"/> with independent standard normal values: Philox block b (counter b,
    /// stream <see cref="SketchStream"/>, key = seed) gives elements 4b..4b+3 by two Box–Muller transforms.
    /// </summary>
    /// <param name="destination">The values to write.</param>
    /// <param name="seed">The Philox key.</param>
    public static void FillGaussian(Span<float> destination, ulong seed)
    {
        Span<double> z = stackalloc double[4];
        for (int b = 0; b * 4 < destination.Length; b++)
        {
            Philox4x32Block block = Philox4x32.Generate((ulong)b, SketchStream, 0, seed);
            BoxMuller(block.X0, block.X1, out z[0], out z[1]);
            BoxMuller(block.X2, block.X3, out z[2], out z[3]);
            int count = Math.Min(4, destination.Length - b * 4);
            for (int i = 0; i < count; i++) destination[b * 4 + i] = (float)z[i];
        }
    }

    /// <summary>Two independent N(0, 1) values from two 32-bit words; u1 in (0, 1] so the logarithm is finite.</summary>
    private static void BoxMuller(uint bits1, uint bits2, out double z0, out double z1)
    {
        double u1 = ((bits1 >> 8) + 1) * (1.0 / 16777216.0);
        double u2 = (bits2 >> 8) * (1.0 / 16777216.0);
        double radius = Math.Sqrt(-2.0 * Math.Log(u1));
        (double sin, double cos) = Math.SinCos(2.0 * Math.PI * u2);
        z0 = radius * cos;
        z1 = radius * sin;
    }

    /// <summary>
    /// Modified Gram–Schmidt, run twice ("twice is enough", Giraud et al. 2005), on the <paramref name="count"/> rows
    /// of length <paramref name="length"/>; dot products in double. A row that vanishes (rank deficiency) is set to zero.
    /// When <paramref name="r"/> is given it receives R (count × count, upper triangular, row-major) with
    /// original row i = Σ_j R[j, i] · orthonormal row j.
    /// </summary>
    internal static void OrthonormalizeRows(Span<float> rows, int count, int length, double[]? r)
    {
        if (r is not null) Array.Clear(r);
        for (int i = 0; i < count; i++)
        {
            Span<float> x = rows.Slice(i * length, length);
            double originalNorm = Math.Sqrt(Dot(x, x));
            for (int pass = 0; pass < 2; pass++)
            {
                for (int j = 0; j < i; j++)
                {
                    ReadOnlySpan<float> q = rows.Slice(j * length, length);
                    double projection = Dot(q, x);
                    if (r is not null) r[j * count + i] += projection;
                    float f = (float)projection;
                    for (int t = 0; t < length; t++) x[t] -= f * q[t];
                }
            }
            double norm = Math.Sqrt(Dot(x, x));
            // What is left after removing the earlier directions is rounding noise, not a new direction.
            if (norm <= originalNorm * 1e-6 || norm == 0)
            {
                x.Clear();
                continue;
            }
            if (r is not null) r[i * count + i] = norm;
            float inverse = (float)(1.0 / norm);
            for (int t = 0; t < length; t++) x[t] *= inverse;
        }
    }

    private static double Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        double sum = 0;
        for (int t = 0; t < x.Length; t++) sum += (double)x[t] * y[t];
        return sum;
    }

    internal static void ValidateShape(ReadOnlySpan<float> a, int rows, int columns, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rank, Math.Min(rows, columns));
        ArgumentOutOfRangeException.ThrowIfLessThan(a.Length, (long)rows * columns, nameof(a));
    }
}
