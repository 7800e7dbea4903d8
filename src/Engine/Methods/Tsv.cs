using MathNet.Numerics.LinearAlgebra;
using Weld.Engine.Compression;
using Weld.Kernels.Cpu;

namespace Weld.Engine.Methods;

/// <summary>
/// TSV-Merge (Gargiulo et al., "Task Singular Vectors: Reducing Task Interference in Model Merging", CVPR 2025).
/// For every 2-D tensor, with T task vectors:
/// <code>
///   Δ_t = θ_t − θ_base = U_t Σ_t V_tᵀ                 (thin SVD)
///   k   = ⌊sv_reduction · min(m, n)⌋                  (sv_reduction defaults to 1/T)
///   U   = [U_1[:, :k] … U_T[:, :k]],  V likewise,  Σ = blockdiag(Σ_1[:k] … Σ_T[:k])
///   U_⊥ = P_U Q_Uᵀ where U = P_U S_U Q_Uᵀ              (polar factor: the nearest matrix with orthonormal columns)
///   V_⊥ = P_V Q_Vᵀ                                     (likewise)
///   θ   = θ_base + α · U_⊥ Σ V_⊥ᵀ
/// </code>
/// Tensors that are not 2-D (norms, biases) take the mean task vector: θ = θ_base + α · (1/T) Σ_t Δ_t.
/// </summary>
/// <remarks>
/// Every SVD is exact, in double precision (MathNet.Numerics; a thin QR first, so a tall embedding never builds an
/// m × m factor): k is a large share of min(m, n), where a randomized range finder saves little, and the exact
/// factorisation makes the method deterministic without a seed. Singular vectors are unique only up to sign, and a
/// sign flips a column of U and the same column of V together, which the polar factors carry through unchanged: the
/// result does not depend on the signs the factorisation happens to pick.
/// </remarks>
public sealed class Tsv : IMergeMethod, IWholeTensorWorkingMemory
{
    /// <inheritdoc />
    public string Name => "tsv";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        // The reference implementation keeps int(min(m, n) · sv_reduction) triplets per task with sv_reduction = 1/T;
        // 0 stands for that default because the default depends on T.
        ParameterSpec.Number("sv_reduction", ParameterScope.Global, 0.0, 0, 1),
        ParameterSpec.Number("alpha", ParameterScope.Global, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        int count = inputs.Count;
        double alpha = inputs.Global.Number("alpha");
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        inputs.Kernels.SubtractRows(inputs.Models.Span, baseline);

        if (inputs.Shape.Length != 2)
        {
            var weights = new float[count];
            Array.Fill(weights, (float)(alpha / count));
            inputs.Kernels.WeightedSum(inputs.Models.Span, weights, output);
            inputs.Kernels.Axpby(1f, output, 1f, baseline, output);
            return;
        }

        int m = checked((int)inputs.Shape[0]), n = checked((int)inputs.Shape[1]);
        double reduction = inputs.Global.Number("sv_reduction");
        if (reduction == 0) reduction = 1.0 / count;
        int k = RankPerTask(reduction, Math.Min(m, n));
        Matrix<double> merged = k == 0 ? Matrix<double>.Build.Dense(m, n) : MergedTaskMatrix(inputs, m, n, k);
        if (k == 0) inputs.Note?.Invoke($"{inputs.TensorName}: sv_reduction keeps no singular triplet of a [{m}, {n}] tensor; the base is kept");

        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                output[i * n + j] = (float)(baseline[i * n + j] + alpha * merged[i, j]);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Float64, every task factored at once (the upper bound of the parallel loop): per task its Δ, a transposed copy
    /// when it is wide, the thin QR's Q, U = Q·U_R (4 matrices of m·n) and U's first k columns; beside them the stacked
    /// U and V ((m + n)·T·k). Then the two polar factors (each a thin SVD of a stacked matrix: four of its size), the
    /// stacked factors, U_⊥Σ and the merged m × n result. The larger of the two phases.
    /// </remarks>
    public long WorkingBytes(long[] shape, IReadOnlyList<ResolvedParameters> modelParameters, ResolvedParameters global)
    {
        if (shape.Length != 2) return 0;
        long m = Math.Max(shape[0], shape[1]), n = Math.Min(shape[0], shape[1]);
        int count = modelParameters.Count;
        double reduction = global.Number("sv_reduction");
        long k = RankPerTask(reduction == 0 ? 1.0 / count : reduction, (int)Math.Min(n, int.MaxValue));
        long stacked = (m + n) * count * k;
        long factoring = count * (4 * m * n + m * k) + stacked;
        long polar = stacked + 4 * stacked + m * count * k + m * n;
        return sizeof(double) * Math.Max(factoring, polar);
    }

    /// <summary>k = ⌊reduction · min(m, n)⌋, the triplets kept per task (the reference's <c>int(s.shape[0] * sv_reduction)</c>).</summary>
    internal static int RankPerTask(double reduction, int fullRank) => (int)Math.Floor(reduction * fullRank + 1e-9);

    /// <summary>U_⊥ Σ V_⊥ᵀ of the task vectors held in the rows of <paramref name="inputs"/> (already minus the base).</summary>
    /// <remarks>
    /// The T factorisations are independent, as are the two polar factors, so they run side by side; each is computed
    /// whole by one thread, so the result does not depend on the thread count.
    /// </remarks>
    private static Matrix<double> MergedTaskMatrix(TensorMergeInputs inputs, int m, int n, int k)
    {
        int columns = inputs.Count * k;
        var stackedU = Matrix<double>.Build.Dense(m, columns);
        var stackedV = Matrix<double>.Build.Dense(n, columns);
        var sigma = new double[columns];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = inputs.Kernels is CpuKernels cpu ? cpu.MaxDegreeOfParallelism : -1 };
        Memory<float> models = inputs.Models;
        int length = inputs.Length;
        Parallel.For(0, inputs.Count, parallel, t =>
        {
            ReadOnlySpan<float> row = models.Span.Slice(t * length, length);
            var delta = Matrix<double>.Build.Dense(m, n);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    delta[i, j] = row[i * n + j];
            (Matrix<double> u, double[] s, Matrix<double> vt) = ThinSvd.Compute(delta);
            // Each task writes its own block of columns.
            stackedU.SetSubMatrix(0, t * k, u.SubMatrix(0, m, 0, k));
            stackedV.SetSubMatrix(0, t * k, vt.SubMatrix(0, k, 0, n).Transpose());
            Array.Copy(s, 0, sigma, t * k, k);
        });
        Matrix<double> uPerp = null!, vPerp = null!;
        Parallel.Invoke(parallel, () => uPerp = PolarFactor(stackedU), () => vPerp = PolarFactor(stackedV));
        return uPerp.Multiply(Matrix<double>.Build.Diagonal(sigma)).TransposeAndMultiply(vPerp);
    }

    /// <summary>
    /// The orthogonal polar factor P·Qᵀ of X = P·S·Qᵀ (thin SVD): orthonormal columns when X is tall, orthonormal rows
    /// when it is wide — the orthogonal matrix nearest to X in the Frobenius norm (orthogonal Procrustes).
    /// </summary>
    internal static Matrix<double> PolarFactor(Matrix<double> x)
    {
        (Matrix<double> p, _, Matrix<double> qt) = ThinSvd.Compute(x);
        return p.Multiply(qt);
    }
}
