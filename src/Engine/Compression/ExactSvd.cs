using MathNet.Numerics.LinearAlgebra;

namespace Weld.Engine.Compression;

/// <summary>
/// Full singular value decomposition through MathNet.Numerics (double precision), truncated to a rank:
/// the reference for small matrices and tests. Costs O(m·n·min(m, n)) time and O(m² + n²) memory.
/// </summary>
public static class ExactSvd
{
    /// <summary>The top <paramref name="rank"/> singular triplets of the row-major <paramref name="rows"/> × <paramref name="columns"/> matrix <paramref name="a"/>.</summary>
    /// <param name="a">The matrix, row-major.</param>
    /// <param name="rows">Rows (m).</param>
    /// <param name="columns">Columns (n).</param>
    /// <param name="rank">Triplets to keep; at most min(m, n).</param>
    /// <returns>The truncated decomposition.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A dimension or the rank is out of range, or <paramref name="a"/> is short.</exception>
    public static TruncatedSvd Compute(ReadOnlySpan<float> a, int rows, int columns, int rank)
    {
        RandomizedSvd.ValidateShape(a, rows, columns, rank);
        var matrix = Matrix<double>.Build.Dense(rows, columns);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++)
                matrix[i, j] = a[i * columns + j];
        var svd = matrix.Svd(computeVectors: true);
        var u = new float[rows * rank];
        var s = new float[rank];
        var vt = new float[rank * columns];
        for (int k = 0; k < rank; k++)
        {
            s[k] = (float)svd.S[k];
            for (int i = 0; i < rows; i++) u[i * rank + k] = (float)svd.U[i, k];
            for (int j = 0; j < columns; j++) vt[k * columns + j] = (float)svd.VT[k, j];
        }
        return new TruncatedSvd(u, s, vt, rows, columns, rank);
    }

    /// <summary>All min(m, n) singular values of <paramref name="a"/>, descending, in double precision.</summary>
    /// <param name="a">The matrix, row-major.</param>
    /// <param name="rows">Rows (m).</param>
    /// <param name="columns">Columns (n).</param>
    /// <returns>The singular values.</returns>
    public static double[] SingularValues(ReadOnlySpan<float> a, int rows, int columns)
    {
        RandomizedSvd.ValidateShape(a, rows, columns, 0);
        var matrix = Matrix<double>.Build.Dense(rows, columns);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < columns; j++)
                matrix[i, j] = a[i * columns + j];
        return matrix.Svd(computeVectors: false).S.ToArray();
    }
}
