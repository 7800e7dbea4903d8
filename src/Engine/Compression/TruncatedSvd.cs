namespace Weld.Engine.Compression;

/// <summary>
/// A rank-<see cref="Rank"/> singular value decomposition A ≈ U·diag(S)·Vᵀ of a row-major
/// <see cref="Rows"/> × <see cref="Columns"/> matrix, singular values in descending order.
/// </summary>
/// <param name="U">Left singular vectors, <see cref="Rows"/> × <see cref="Rank"/>, row-major (orthonormal columns).</param>
/// <param name="S">Singular values, descending, length <see cref="Rank"/>.</param>
/// <param name="Vt">Right singular vectors transposed, <see cref="Rank"/> × <see cref="Columns"/>, row-major (orthonormal rows).</param>
/// <param name="Rows">Rows of the decomposed matrix.</param>
/// <param name="Columns">Columns of the decomposed matrix.</param>
/// <param name="Rank">Number of singular triplets kept.</param>
public sealed record TruncatedSvd(float[] U, float[] S, float[] Vt, int Rows, int Columns, int Rank)
{
    /// <summary>Writes U·diag(S)·Vᵀ (row-major, <see cref="Rows"/> × <see cref="Columns"/>) into <paramref name="destination"/>.</summary>
    /// <param name="destination">At least Rows·Columns floats; overwritten.</param>
    public void Reconstruct(Span<float> destination)
    {
        var scaledU = new float[U.Length];
        for (int i = 0; i < Rows; i++)
            for (int j = 0; j < Rank; j++)
                scaledU[i * Rank + j] = U[i * Rank + j] * S[j];
        // Vt is Rank × Columns, i.e. B of C = (U·Σ)·Vt without a transpose.
        Weld.Kernels.Cpu.Gemm.Multiply(scaledU, Vt, destination, Rows, Rank, Columns);
    }
}
