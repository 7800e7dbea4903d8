using MathNet.Numerics.LinearAlgebra;
using Weld.Engine.Compression;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>Randomized truncated SVD against MathNet's full SVD and matrices of known structure.</summary>
public class RandomizedSvdTests
{
    /// <summary>A row-major m × n matrix U·diag(sigma)·Vᵀ with random orthonormal U, V (MathNet QR of Gaussian matrices).</summary>
    private static float[] WithSpectrum(int m, int n, double[] sigma, int seed)
    {
        var random = new System.Random(seed);
        int k = sigma.Length;
        Matrix<double> Gaussian(int rows, int cols) => Matrix<double>.Build.Dense(rows, cols, (_, _) =>
            Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        Matrix<double> u = Gaussian(m, k).QR().Q.SubMatrix(0, m, 0, k);
        Matrix<double> v = Gaussian(n, k).QR().Q.SubMatrix(0, n, 0, k);
        Matrix<double> a = u * Matrix<double>.Build.DenseOfDiagonalArray(sigma) * v.Transpose();
        var result = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                result[i * n + j] = (float)a[i, j];
        return result;
    }

    private static float[] RandomMatrix(int m, int n, int seed)
    {
        var random = new System.Random(seed);
        var result = new float[m * n];
        for (int i = 0; i < result.Length; i++) result[i] = (float)(random.NextDouble() * 2 - 1);
        return result;
    }

    /// <summary>‖A − U·diag(S)·Vᵀ‖_F by plain scalar loops in double.</summary>
    private static double ResidualNorm(float[] a, TruncatedSvd svd)
    {
        double sum = 0;
        for (int i = 0; i < svd.Rows; i++)
            for (int j = 0; j < svd.Columns; j++)
            {
                double x = 0;
                for (int k = 0; k < svd.Rank; k++) x += (double)svd.U[i * svd.Rank + k] * svd.S[k] * svd.Vt[k * svd.Columns + j];
                double d = a[i * svd.Columns + j] - x;
                sum += d * d;
            }
        return Math.Sqrt(sum);
    }

    private static double Norm(float[] a)
    {
        double sum = 0;
        foreach (float x in a) sum += (double)x * x;
        return Math.Sqrt(sum);
    }

    [Theory]
    [InlineData(96, 64, 8)]
    [InlineData(50, 120, 5)]
    [InlineData(128, 384, 8)]
    public void Recovers_a_matrix_of_exactly_the_requested_rank(int m, int n, int rank)
    {
        var sigma = new double[rank];
        for (int i = 0; i < rank; i++) sigma[i] = 10.0 / (i + 1);
        float[] a = WithSpectrum(m, n, sigma, seed: m + n);

        TruncatedSvd svd = RandomizedSvd.Compute(a, m, n, rank, seed: 7);

        Assert.True(ResidualNorm(a, svd) / Norm(a) < 1e-5, $"relative error {ResidualNorm(a, svd) / Norm(a)}");
        for (int i = 0; i < rank; i++) Assert.Equal(sigma[i], svd.S[i], sigma[0] * 1e-5);
    }

    [Theory]
    [InlineData(24, 16, 6, 1)]
    [InlineData(16, 30, 6, 2)]
    [InlineData(40, 40, 25, 3)]
    public void Singular_values_equal_MathNet_full_svd_when_the_sketch_spans_the_matrix(int m, int n, int rank, int seed)
    {
        float[] a = RandomMatrix(m, n, seed);
        double[] expected = ExactSvd.SingularValues(a, m, n);

        TruncatedSvd svd = RandomizedSvd.Compute(a, m, n, rank, seed: 11);

        for (int i = 0; i < rank; i++) Assert.Equal(expected[i], svd.S[i], expected[0] * 2e-6);
    }

    [Fact]
    public void Columns_of_U_and_rows_of_Vt_are_orthonormal()
    {
        float[] a = RandomMatrix(70, 90, 5);
        TruncatedSvd svd = RandomizedSvd.Compute(a, 70, 90, 12, seed: 3);
        for (int p = 0; p < 12; p++)
            for (int q = 0; q < 12; q++)
            {
                double uu = 0, vv = 0;
                for (int i = 0; i < 70; i++) uu += (double)svd.U[i * 12 + p] * svd.U[i * 12 + q];
                for (int j = 0; j < 90; j++) vv += (double)svd.Vt[p * 90 + j] * svd.Vt[q * 90 + j];
                Assert.Equal(p == q ? 1.0 : 0.0, uu, 1e-5);
                Assert.Equal(p == q ? 1.0 : 0.0, vv, 1e-5);
            }
    }

    [Fact]
    public void Rank_r_error_is_within_one_percent_of_the_Eckart_Young_optimum_on_a_slowly_decaying_spectrum()
    {
        const int m = 200, n = 160, rank = 16;
        var sigma = new double[n];
        for (int i = 0; i < n; i++) sigma[i] = 1.0 / Math.Sqrt(i + 1);
        float[] a = WithSpectrum(m, n, sigma, seed: 42);

        // The optimum from MathNet's full SVD of the stored (float-rounded) matrix: sqrt of the discarded energy.
        double[] exact = ExactSvd.SingularValues(a, m, n);
        double optimum = 0;
        for (int i = rank; i < exact.Length; i++) optimum += exact[i] * exact[i];
        optimum = Math.Sqrt(optimum);

        double error = ResidualNorm(a, RandomizedSvd.Compute(a, m, n, rank, seed: 1));

        Assert.True(error <= optimum * 1.01, $"error {error}, optimum {optimum}");
        Assert.True(error >= optimum * (1 - 1e-6), $"error {error} below the optimum {optimum}: the reference is wrong");
    }

    [Fact]
    public void Exact_svd_truncation_reconstructs_within_its_discarded_energy()
    {
        float[] a = RandomMatrix(30, 20, 9);
        double[] sigma = ExactSvd.SingularValues(a, 30, 20);
        TruncatedSvd svd = ExactSvd.Compute(a, 30, 20, 5);
        double discarded = 0;
        for (int i = 5; i < sigma.Length; i++) discarded += sigma[i] * sigma[i];
        Assert.Equal(Math.Sqrt(discarded), ResidualNorm(a, svd), 1e-4);
    }

    [Fact]
    public void Same_seed_gives_bit_identical_results_for_any_parallelism_and_another_seed_differs()
    {
        float[] a = RandomMatrix(130, 150, 4);
        TruncatedSvd first = RandomizedSvd.Compute(a, 130, 150, 10, seed: 99, maxDegreeOfParallelism: 1);
        TruncatedSvd second = RandomizedSvd.Compute(a, 130, 150, 10, seed: 99, maxDegreeOfParallelism: -1);
        TruncatedSvd other = RandomizedSvd.Compute(a, 130, 150, 10, seed: 100, oversampling: 2, powerIterations: 0);
        Assert.Equal(first.U, second.U);
        Assert.Equal(first.S, second.S);
        Assert.Equal(first.Vt, second.Vt);
        Assert.NotEqual(first.Vt, other.Vt);
    }

    [Fact]
    public void Gaussian_sketch_has_mean_zero_and_unit_variance()
    {
        var values = new float[40_000];
        RandomizedSvd.FillGaussian(values, 5);
        double sum = 0, squares = 0;
        foreach (float v in values)
        {
            sum += v;
            squares += (double)v * v;
        }
        Assert.InRange(sum / values.Length, -0.02, 0.02);
        Assert.InRange(squares / values.Length, 0.97, 1.03);
    }

    [Fact]
    public void Reconstruct_matches_the_scalar_product()
    {
        float[] a = RandomMatrix(20, 12, 8);
        TruncatedSvd svd = RandomizedSvd.Compute(a, 20, 12, 4, seed: 2);
        var rebuilt = new float[240];
        svd.Reconstruct(rebuilt);
        for (int i = 0; i < 20; i++)
            for (int j = 0; j < 12; j++)
            {
                double x = 0;
                for (int k = 0; k < 4; k++) x += (double)svd.U[i * 4 + k] * svd.S[k] * svd.Vt[k * 12 + j];
                Assert.Equal(x, rebuilt[i * 12 + j], 1e-5);
            }
    }
}
