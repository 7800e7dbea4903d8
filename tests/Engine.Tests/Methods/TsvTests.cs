using MathNet.Numerics.LinearAlgebra;
using Weld.Engine.Methods;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>TSV-Merge against a plain reference built from MathNet's full SVD, and the paper's invariants.</summary>
public class TsvTests
{
    private static readonly Tsv s_method = new();

    /// <summary>
    /// The paper's algorithm written directly: full SVDs (no thin QR), stacked truncated singular vectors, polar factors
    /// from the full SVD of the stacks, U_⊥ Σ V_⊥ᵀ, θ_base + α·Δ.
    /// </summary>
    private static float[] Reference(float[] baseline, float[][] models, int m, int n, double reduction, double alpha)
    {
        int tasks = models.Length;
        int k = (int)Math.Floor(reduction * Math.Min(m, n) + 1e-9);
        var u = Matrix<double>.Build.Dense(m, tasks * k);
        var v = Matrix<double>.Build.Dense(n, tasks * k);
        var sigma = Matrix<double>.Build.Dense(tasks * k, tasks * k);
        for (int t = 0; t < tasks; t++)
        {
            var delta = Matrix<double>.Build.Dense(m, n, (i, j) => (double)models[t][i * n + j] - baseline[i * n + j]);
            var svd = delta.Svd(computeVectors: true);
            for (int c = 0; c < k; c++)
            {
                sigma[t * k + c, t * k + c] = svd.S[c];
                for (int i = 0; i < m; i++) u[i, t * k + c] = svd.U[i, c];
                for (int j = 0; j < n; j++) v[j, t * k + c] = svd.VT[c, j];
            }
        }
        var merged = Polar(u) * sigma * Polar(v).Transpose();
        var result = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                result[i * n + j] = (float)(baseline[i * n + j] + alpha * merged[i, j]);
        return result;
    }

    private static Matrix<double> Polar(Matrix<double> x)
    {
        var svd = x.Svd(computeVectors: true);
        int r = Math.Min(x.RowCount, x.ColumnCount);
        return svd.U.SubMatrix(0, x.RowCount, 0, r) * svd.VT.SubMatrix(0, r, 0, x.ColumnCount);
    }

    private static float[] Merge(float[] baseline, float[][] models, long[] shape, double reduction = 0, double alpha = 1) =>
        MethodHarness.Run(s_method, baseline, models.Select(x => (float[])x.Clone()).ToArray(), shape,
            global: g => g.Set("sv_reduction", reduction).Set("alpha", alpha));

    private static void AssertClose(float[] expected, float[] actual, double tolerance)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"element {i}: expected {expected[i]}, got {actual[i]}");
    }

    [Theory]
    [InlineData(24, 16, 3, 0.0, 1.0)]   // default: 1/T of the spectrum each, k = 5
    [InlineData(12, 30, 2, 0.25, 0.7)]  // wide, k = 3
    [InlineData(20, 20, 4, 0.1, 1.3)]   // k = 2
    public void Matches_the_plain_reference(int m, int n, int tasks, double reduction, double alpha)
    {
        (float[] baseline, float[][] models) = MethodHarness.RandomModels(m * 100 + n, m * n, tasks, deltaScale: 0.05f);
        float[] expected = Reference(baseline, models, m, n, reduction == 0 ? 1.0 / tasks : reduction, alpha);
        AssertClose(expected, Merge(baseline, models, [m, n], reduction, alpha), 2e-6);
    }

    [Theory]
    [InlineData(40, 12)] // tall: orthonormal columns
    [InlineData(9, 15)]  // wide (more stacked vectors than rows): orthonormal rows
    public void Polar_factor_of_stacked_singular_vectors_is_orthonormal(int rows, int perTask)
    {
        var random = new Random(rows);
        var stacked = Matrix<double>.Build.Dense(rows, 3 * perTask);
        for (int t = 0; t < 3; t++)
        {
            var delta = Matrix<double>.Build.Dense(rows, 2 * perTask, (_, _) => random.NextDouble() - 0.5);
            var svd = delta.Svd(computeVectors: true);
            stacked.SetSubMatrix(0, t * perTask, svd.U.SubMatrix(0, rows, 0, Math.Min(perTask, rows)));
        }
        Matrix<double> perp = Tsv.PolarFactor(stacked);
        Assert.Equal(stacked.RowCount, perp.RowCount);
        Assert.Equal(stacked.ColumnCount, perp.ColumnCount);
        Matrix<double> gram = rows >= stacked.ColumnCount ? perp.TransposeThisAndMultiply(perp) : perp.TransposeAndMultiply(perp);
        for (int i = 0; i < gram.RowCount; i++)
            for (int j = 0; j < gram.ColumnCount; j++)
                Assert.True(Math.Abs(gram[i, j] - (i == j ? 1 : 0)) <= 1e-5, $"Gram[{i}, {j}] = {gram[i, j]}");
        // Stacks of different tasks overlap, so the factor must differ from the input (it is not a no-op).
        Assert.True((perp - stacked).FrobeniusNorm() > 1e-3);
    }

    [Fact]
    public void One_task_at_full_rank_is_task_arithmetic()
    {
        const int m = 18, n = 11;
        (float[] baseline, float[][] models) = MethodHarness.RandomModels(5, m * n, 1, deltaScale: 0.05f);
        var expected = new float[m * n];
        for (int i = 0; i < expected.Length; i++) expected[i] = baseline[i] + 0.8f * (models[0][i] - baseline[i]);
        AssertClose(expected, Merge(baseline, models, [m, n], reduction: 1, alpha: 0.8), 1e-6);
    }

    [Fact]
    public void Tasks_in_orthogonal_subspaces_are_summed_exactly()
    {
        // Δ_t = R_m[:, block t] · C_t · R_n[:, block t]ᵀ: rank k each, mutually orthogonal column and row spaces, so the
        // stacked singular vectors are already orthonormal and TSV must return Σ_t Δ_t.
        const int m = 20, n = 12, tasks = 3, k = 4;
        var random = new Random(11);
        Matrix<double> rm = RandomOrthogonal(m, random), rn = RandomOrthogonal(n, random);
        var baseline = MethodHarness.RandomTensor(random, m * n, 1f, bf16: false);
        var models = new float[tasks][];
        var expected = (float[])baseline.Clone();
        for (int t = 0; t < tasks; t++)
        {
            var core = Matrix<double>.Build.Dense(k, k, (_, _) => random.NextDouble() - 0.5);
            Matrix<double> delta = rm.SubMatrix(0, m, t * k, k) * core * rn.SubMatrix(0, n, t * k, k).Transpose();
            models[t] = new float[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    models[t][i * n + j] = (float)(baseline[i * n + j] + delta[i, j]);
                    expected[i * n + j] += (float)delta[i, j];
                }
        }
        AssertClose(expected, Merge(baseline, models, [m, n]), 1e-5);
    }

    [Fact]
    public void Tensors_that_are_not_matrices_take_the_mean_task_vector()
    {
        (float[] baseline, float[][] models) = MethodHarness.RandomModels(9, 64, 3, deltaScale: 0.05f);
        var expected = new float[64];
        for (int i = 0; i < 64; i++)
            expected[i] = baseline[i] + 0.5f * ((models[0][i] - baseline[i]) + (models[1][i] - baseline[i]) + (models[2][i] - baseline[i])) / 3;
        AssertClose(expected, Merge(baseline, models, [64], alpha: 0.5), 1e-6);
    }

    [Fact]
    public void A_reduction_that_keeps_nothing_returns_the_base()
    {
        (float[] baseline, float[][] models) = MethodHarness.RandomModels(13, 8 * 6, 2, deltaScale: 0.05f);
        Assert.Equal(baseline, Merge(baseline, models, [8, 6], reduction: 0.1));
    }

    [Fact]
    public void Recipe_on_the_zoo_models_writes_every_tensor()
    {
        string output = RecipeHarness.Merge("""
            models:
              - model: {zoo}/lm-ft-c
              - model: {zoo}/lm-ft-python
            merge_method: tsv
            base_model: {zoo}/lm-base
            dtype: float32
            out_dtype: float32
            """);
        var merged = RecipeHarness.ReadAll(output);
        var baseline = RecipeHarness.ReadAll(TestPaths.Model("lm-base"));
        Assert.Equal(baseline.Keys.Order(), merged.Keys.Order());
        const string probe = "model.layers.1.self_attn.o_proj.weight";
        float[] c = RecipeHarness.Read(TestPaths.Model("lm-ft-c"), probe), python = RecipeHarness.Read(TestPaths.Model("lm-ft-python"), probe);
        int size = (int)Math.Sqrt(c.Length);
        float[] expected = Reference(baseline[probe], [c, python], size, c.Length / size, 0.5, 1.0);
        AssertClose(expected, merged[probe], 1e-5);
        foreach (var (name, values) in merged) Assert.All(values, v => Assert.True(float.IsFinite(v), name));
    }

    private static Matrix<double> RandomOrthogonal(int size, Random random) =>
        Matrix<double>.Build.Dense(size, size, (_, _) => random.NextDouble() - 0.5).QR().Q;
}
