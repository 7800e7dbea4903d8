using Weld.Engine.Alignment;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>The assignment solver against brute force, a Hungarian reference and the LP dual.</summary>
public class LinearAssignmentTests
{
    [Theory]
    [InlineData(1, 11)]
    [InlineData(2, 12)]
    [InlineData(3, 13)]
    [InlineData(4, 14)]
    [InlineData(5, 15)]
    [InlineData(6, 16)]
    [InlineData(7, 17)]
    public void Matches_brute_force_on_random_matrices(int n, int seed)
    {
        var random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var score = new double[n * n];
            for (int i = 0; i < score.Length; i++) score[i] = random.NextDouble() * 20 - 10;
            int[] assignment = LinearAssignment.Solve(score, n);
            Assert.True(TensorPermuter.IsPermutation(assignment));
            Assert.Equal(BruteForceBest(score, n), LinearAssignment.Objective(score, n, assignment), 9);
        }
    }

    [Theory]
    [InlineData(5, 21)]
    [InlineData(7, 22)]
    public void Matches_brute_force_with_many_ties(int n, int seed)
    {
        var random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var score = new double[n * n];
            for (int i = 0; i < score.Length; i++) score[i] = random.Next(3); // values 0, 1, 2: many equal optima
            int[] assignment = LinearAssignment.Solve(score, n);
            Assert.True(TensorPermuter.IsPermutation(assignment));
            Assert.Equal(BruteForceBest(score, n), LinearAssignment.Objective(score, n, assignment));
        }
    }

    [Fact]
    public void Constant_matrix_gives_a_permutation_and_n1_gives_zero()
    {
        int[] constant = LinearAssignment.Solve(new double[16], 4);
        Assert.True(TensorPermuter.IsPermutation(constant));
        Assert.Equal([0], LinearAssignment.Solve([-3.5], 1));
        Assert.Empty(LinearAssignment.Solve([], 0));
    }

    [Fact]
    public void Finds_a_hidden_permutation_and_the_2d_overload_agrees()
    {
        // A diagonally dominant matrix with its columns shuffled: the optimum undoes the shuffle.
        const int n = 50;
        var random = new Random(31);
        int[] hidden = [.. Enumerable.Range(0, n).OrderBy(_ => random.Next())];
        var grid = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) grid[i, hidden[j]] = (i == j ? 100 : 0) + random.NextDouble();
        int[] assignment = LinearAssignment.Solve(grid);
        for (int i = 0; i < n; i++) Assert.Equal(hidden[i], assignment[i]);
    }

    [Fact]
    public void Large_random_case_is_optimal_by_the_dual_and_agrees_with_a_reference_hungarian()
    {
        const int n = 200;
        var random = new Random(41);
        var score = new double[n * n];
        for (int i = 0; i < score.Length; i++) score[i] = random.NextDouble();
        int[] assignment = LinearAssignment.Solve(score, n);
        Assert.True(TensorPermuter.IsPermutation(assignment));
        double value = LinearAssignment.Objective(score, n, assignment);

        // Reference: a textbook O(n^4) Hungarian method (Munkres' covering steps) on cost = −score, which
        // also yields dual potentials; the dual value bounds every assignment, so equality proves optimality.
        (int[] reference, double[] u, double[] v) = ReferenceHungarian(score, n);
        Assert.Equal(LinearAssignment.Objective(score, n, reference), value, 9);
        double dual = 0;
        for (int i = 0; i < n; i++) dual += u[i] + v[i];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) Assert.True(u[i] + v[j] >= score[i * n + j] - 1e-9, $"dual infeasible at {i},{j}");
        Assert.Equal(dual, value, 9);
    }

    [Fact]
    public void Rejects_bad_input()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => LinearAssignment.Solve(new double[5], 2));
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve([double.NaN], 1));
        Assert.Throws<ArgumentException>(() => LinearAssignment.Solve(new double[2, 3]));
    }

    private static double BruteForceBest(double[] score, int n)
    {
        var permutation = new int[n];
        for (int i = 0; i < n; i++) permutation[i] = i;
        double best = double.NegativeInfinity;
        do
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += score[i * n + permutation[i]];
            best = Math.Max(best, sum);
        }
        while (Permutations.Next(permutation));
        return best;
    }


    /// <summary>
    /// Maximisation via the classic Hungarian method on an explicit matrix: subtract potentials until a perfect
    /// matching of zero-slack cells exists (augmenting paths by BFS, label updates by the minimum uncovered slack).
    /// Returns the assignment and potentials u (rows), v (columns) with u[i] + v[j] ≥ score[i, j].
    /// </summary>
    private static (int[] Assignment, double[] U, double[] V) ReferenceHungarian(double[] score, int n)
    {
        var u = new double[n];
        var v = new double[n];
        for (int i = 0; i < n; i++)
        {
            u[i] = double.NegativeInfinity;
            for (int j = 0; j < n; j++) u[i] = Math.Max(u[i], score[i * n + j]);
        }

        var matchRow = new int[n]; // column -> row
        var matchColumn = new int[n]; // row -> column
        Array.Fill(matchRow, -1);
        Array.Fill(matchColumn, -1);
        const double eps = 1e-12;
        bool Tight(int i, int j) => u[i] + v[j] - score[i * n + j] <= eps;

        for (int root = 0; root < n; root++)
        {
            while (true)
            {
                // BFS over alternating paths of tight edges from the free row `root`.
                var rowVisited = new bool[n];
                var columnParent = new int[n];
                Array.Fill(columnParent, -1);
                var queue = new Queue<int>();
                queue.Enqueue(root);
                rowVisited[root] = true;
                int freeColumn = -1;
                while (queue.Count > 0 && freeColumn < 0)
                {
                    int i = queue.Dequeue();
                    for (int j = 0; j < n && freeColumn < 0; j++)
                    {
                        if (columnParent[j] >= 0 || !Tight(i, j)) continue;
                        columnParent[j] = i;
                        if (matchRow[j] < 0) freeColumn = j;
                        else if (!rowVisited[matchRow[j]])
                        {
                            rowVisited[matchRow[j]] = true;
                            queue.Enqueue(matchRow[j]);
                        }
                    }
                }

                if (freeColumn >= 0)
                {
                    for (int j = freeColumn; j >= 0;)
                    {
                        int i = columnParent[j];
                        int previous = matchColumn[i];
                        matchRow[j] = i;
                        matchColumn[i] = j;
                        j = previous;
                    }

                    break;
                }

                double delta = double.PositiveInfinity;
                for (int i = 0; i < n; i++)
                {
                    if (!rowVisited[i]) continue;
                    for (int j = 0; j < n; j++)
                        if (columnParent[j] < 0) delta = Math.Min(delta, u[i] + v[j] - score[i * n + j]);
                }

                for (int i = 0; i < n; i++) if (rowVisited[i]) u[i] -= delta;
                for (int j = 0; j < n; j++) if (columnParent[j] >= 0) v[j] += delta;
            }
        }

        return (matchColumn, u, v);
    }
}
