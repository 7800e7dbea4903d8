namespace Weld.Engine.Alignment;

/// <summary>
/// The linear assignment problem on a dense square matrix: the permutation <c>σ</c> that maximises
/// <c>Σᵢ score[i, σ(i)]</c>. Solved exactly by shortest augmenting paths with dual potentials (the Jonker–Volgenant
/// scheme without its heuristic initialisation): one Dijkstra-like search per row, O(n³) time, O(n) extra memory.
/// </summary>
/// <remarks>
/// Internally the problem is the minimisation of <c>cost = −score</c>; the potentials <c>u</c> (rows) and <c>v</c>
/// (columns) stay dual-feasible (<c>u[i] + v[j] ≤ cost[i, j]</c>) and every assigned pair is tight, which is what
/// makes the result optimal. Ties are broken towards the lowest column index met first, so the result is a
/// deterministic function of the matrix.
/// </remarks>
public static class LinearAssignment
{
    /// <summary>
    /// Solves the maximisation problem on <paramref name="score"/>, an <paramref name="n"/> × <paramref name="n"/>
    /// row-major matrix.
    /// </summary>
    /// <returns>For each row <c>i</c>, the column <c>σ(i)</c> assigned to it (a permutation of 0..n−1).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is negative or the span is not n × n.</exception>
    /// <exception cref="ArgumentException">The matrix holds a NaN or an infinity.</exception>
    public static int[] Solve(ReadOnlySpan<double> score, int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        ArgumentOutOfRangeException.ThrowIfNotEqual(score.Length, checked(n * n), nameof(score));
        foreach (double value in score)
            if (!double.IsFinite(value)) throw new ArgumentException("the score matrix must be finite (no NaN or infinity).", nameof(score));
        if (n == 0) return [];

        // 1-based arrays with a virtual column 0 that holds the row being inserted, as in the classic formulation.
        var u = new double[n + 1];
        var v = new double[n + 1];
        var rowOfColumn = new int[n + 1];   // 0 = column free
        var way = new int[n + 1];           // predecessor column on the shortest path tree
        var minSlack = new double[n + 1];
        var used = new bool[n + 1];

        for (int row = 1; row <= n; row++)
        {
            rowOfColumn[0] = row;
            int column0 = 0;
            Array.Fill(minSlack, double.PositiveInfinity);
            Array.Clear(used);
            do
            {
                used[column0] = true;
                int i0 = rowOfColumn[column0];
                ReadOnlySpan<double> scoreRow = score.Slice((i0 - 1) * n, n);
                double delta = double.PositiveInfinity;
                int column1 = 0;
                double ui = u[i0];
                for (int j = 1; j <= n; j++)
                {
                    if (used[j]) continue;
                    double reduced = -scoreRow[j - 1] - ui - v[j];
                    if (reduced < minSlack[j])
                    {
                        minSlack[j] = reduced;
                        way[j] = column0;
                    }

                    if (minSlack[j] < delta)
                    {
                        delta = minSlack[j];
                        column1 = j;
                    }
                }

                for (int j = 0; j <= n; j++)
                {
                    if (used[j])
                    {
                        u[rowOfColumn[j]] += delta;
                        v[j] -= delta;
                    }
                    else
                    {
                        minSlack[j] -= delta;
                    }
                }

                column0 = column1;
            }
            while (rowOfColumn[column0] != 0);

            // Augment: flip the assignments along the path back to the virtual column.
            do
            {
                int previous = way[column0];
                rowOfColumn[column0] = rowOfColumn[previous];
                column0 = previous;
            }
            while (column0 != 0);
        }

        var assignment = new int[n];
        for (int j = 1; j <= n; j++) assignment[rowOfColumn[j] - 1] = j - 1;
        return assignment;
    }

    /// <summary>Solves the maximisation problem on a square two-dimensional array.</summary>
    /// <returns>For each row <c>i</c>, the column assigned to it.</returns>
    /// <exception cref="ArgumentException">The array is not square or holds a non-finite value.</exception>
    public static int[] Solve(double[,] score)
    {
        ArgumentNullException.ThrowIfNull(score);
        int n = score.GetLength(0);
        if (score.GetLength(1) != n)
            throw new ArgumentException($"the score matrix must be square, not {n} × {score.GetLength(1)}.", nameof(score));
        var flat = new double[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) flat[i * n + j] = score[i, j];
        return Solve(flat, n);
    }

    /// <summary>The objective <c>Σᵢ score[i, assignment[i]]</c> of an assignment, summed in row order.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The sizes do not match or a column is out of range.</exception>
    public static double Objective(ReadOnlySpan<double> score, int n, ReadOnlySpan<int> assignment)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(score.Length, checked(n * n), nameof(score));
        ArgumentOutOfRangeException.ThrowIfNotEqual(assignment.Length, n, nameof(assignment));
        double total = 0;
        for (int i = 0; i < n; i++)
        {
            int column = assignment[i];
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)column, (uint)n, nameof(assignment));
            total += score[i * n + column];
        }

        return total;
    }
}
