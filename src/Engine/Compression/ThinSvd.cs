using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Factorization;

namespace Weld.Engine.Compression;

/// <summary>
/// The thin (economy) singular value decomposition in double precision: X = U·diag(S)·Vᵀ with r = min(rows, columns)
/// triplets. MathNet's <c>Svd</c> always forms the square factors; a thin QR first (X = Q·R, then R = U_R·S·Vᵀ and
/// U = Q·U_R) keeps every factor no larger than the input, which matters for embeddings (vocabulary × hidden).
/// </summary>
internal static class ThinSvd
{
    /// <summary>U (rows × r), S (r, descending), Vᵀ (r × columns) of <paramref name="x"/>.</summary>
    public static (Matrix<double> U, double[] S, Matrix<double> Vt) Compute(Matrix<double> x)
    {
        if (x.RowCount < x.ColumnCount)
        {
            (Matrix<double> u, double[] s, Matrix<double> vt) = Compute(x.Transpose());
            return (vt.Transpose(), s, u.Transpose());
        }
        QR<double> qr = x.QR(QRMethod.Thin);
        Svd<double> small = qr.R.Svd(computeVectors: true);
        return (qr.Q.Multiply(small.U), small.S.ToArray(), small.VT);
    }
}
