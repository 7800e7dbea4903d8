using Weld.Engine.Compression;

namespace Weld.Engine.Moe;

/// <summary>How <see cref="ExpertLowRank.Truncate"/> chooses a matrix's rank: a fixed rank, or a relative error budget.</summary>
/// <param name="Rank">Keep this many singular triplets (capped at min(rows, columns)); 0 when <paramref name="ErrorBudget"/> decides.</param>
/// <param name="ErrorBudget">The smallest rank whose truncation error ‖W − W_r‖_F ≤ E·‖W‖_F; used when <paramref name="Rank"/> is 0.</param>
public sealed record LowRankTarget(int Rank, double ErrorBudget)
{
    /// <summary>A fixed rank.</summary>
    public static LowRankTarget FixedRank(int rank) => new(rank, 0);

    /// <summary>An error budget.</summary>
    public static LowRankTarget Error(double budget) => new(0, budget);
}

/// <summary>One truncated matrix: its rank and the relative Frobenius error of the re-materialised float32 values.</summary>
/// <param name="Rank">Singular triplets kept.</param>
/// <param name="RelativeError">‖W − W_r‖_F / ‖W‖_F, measured on the float32 reconstruction.</param>
public readonly record struct LowRankOutcome(int Rank, double RelativeError);

/// <summary>
/// MC-SMoE's "then compress" step in its plain form: a merged expert's matrix W is replaced by its rank-r truncated
/// SVD (Weld's randomized SVD), re-materialised as a dense matrix so that every loader reads it unchanged.
/// </summary>
/// <remarks>
/// MC-SMoE compresses with low rank plus a sparse residual and fine-tunes afterwards; Weld does neither: this is the
/// training-free low-rank part only. Storing the factors instead (r·(rows + columns) values) is what would save memory;
/// the dense output saves none and is there so that transformers and the evaluator load the result.
/// </remarks>
public static class ExpertLowRank
{
    private const int InitialSketchRank = 16;

    /// <summary>Replaces <paramref name="matrix"/> (row-major rows × columns) in place by its truncation.</summary>
    /// <param name="matrix">The matrix; overwritten with U_r·Σ_r·V_rᵀ.</param>
    /// <param name="rows">Rows.</param>
    /// <param name="columns">Columns.</param>
    /// <param name="target">Fixed rank or error budget.</param>
    /// <param name="seed">Seed of the randomized SVD's sketch.</param>
    /// <param name="maxDegreeOfParallelism">Threads of the products; does not change the result.</param>
    public static LowRankOutcome Truncate(float[] matrix, int rows, int columns, LowRankTarget target, ulong seed, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentOutOfRangeException.ThrowIfNotEqual(matrix.Length, rows * columns, nameof(matrix));
        int full = Math.Min(rows, columns);
        double energy = 0;
        foreach (float v in matrix) energy += (double)v * v;
        if (energy == 0) return new LowRankOutcome(0, 0);
        float[] original = (float[])matrix.Clone();

        if (target.Rank > 0)
        {
            int rank = Math.Min(target.Rank, full);
            if (rank == full) return new LowRankOutcome(full, 0);
            TruncatedSvd svd = RandomizedSvd.Compute(original, rows, columns, rank, seed, maxDegreeOfParallelism: maxDegreeOfParallelism);
            svd.Reconstruct(matrix);
            return new LowRankOutcome(rank, RelativeError(original, matrix, energy));
        }

        double budget = target.ErrorBudget * target.ErrorBudget * energy;
        int sketch = Math.Min(full, InitialSketchRank);
        while (true)
        {
            TruncatedSvd svd = RandomizedSvd.Compute(original, rows, columns, sketch, seed, maxDegreeOfParallelism: maxDegreeOfParallelism);
            // Tail-energy identity ‖W − W_r‖² = ‖W‖² − Σ_{i<r} σᵢ² proposes the first candidate; the measured error decides.
            double kept = 0;
            for (int rank = 1; rank <= sketch; rank++)
            {
                kept += (double)svd.S[rank - 1] * svd.S[rank - 1];
                if (rank < full && energy - kept > budget) continue;
                if (rank == full) return Restore(matrix, original, full);
                var truncated = new TruncatedSvd(Columns(svd.U, rows, svd.Rank, rank), svd.S[..rank], svd.Vt[..(rank * columns)], rows, columns, rank);
                truncated.Reconstruct(matrix);
                double error = RelativeError(original, matrix, energy);
                if (error <= target.ErrorBudget) return new LowRankOutcome(rank, error);
            }

            if (sketch == full) return Restore(matrix, original, full);
            sketch = Math.Min(full, sketch * 2);
        }
    }

    /// <summary>Full rank: the matrix itself, unchanged.</summary>
    private static LowRankOutcome Restore(float[] matrix, float[] original, int full)
    {
        original.CopyTo(matrix, 0);
        return new LowRankOutcome(full, 0);
    }

    /// <summary>The first <paramref name="keep"/> columns of a rows × rank row-major matrix.</summary>
    private static float[] Columns(float[] u, int rows, int rank, int keep)
    {
        var result = new float[rows * keep];
        for (int i = 0; i < rows; i++) u.AsSpan(i * rank, keep).CopyTo(result.AsSpan(i * keep, keep));
        return result;
    }

    private static double RelativeError(ReadOnlySpan<float> original, ReadOnlySpan<float> approximation, double energy)
    {
        double error = 0;
        for (int i = 0; i < original.Length; i++)
        {
            double d = (double)original[i] - approximation[i];
            error += d * d;
        }

        return Math.Sqrt(error / energy);
    }
}
