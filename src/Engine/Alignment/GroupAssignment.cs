namespace Weld.Engine.Alignment;

/// <summary>
/// The best permutation of one group given its similarity matrices: a plain linear assignment over units, or, when
/// units come in groups (query heads sharing a key/value head), an exact two-level assignment.
/// </summary>
/// <remarks>
/// With groups of r units the permutation maps group g to a source group σ(g) and unit t of it to τ_g(t) within
/// that group, so the objective splits as Σ_g [C[g, σ(g)] + Σ_t S[g·r + t, σ(g)·r + τ_g(t)]]. For every pair of
/// groups the best τ is an r × r assignment on the block of S; σ is then an assignment over the groups with
/// those block optima added to C. Both levels are exact, so the result is the constrained optimum.
/// </remarks>
internal static class GroupAssignment
{
    /// <summary>The permutation maximising <see cref="Objective"/>.</summary>
    /// <param name="group">The group (its size and unit-group size).</param>
    /// <param name="units">S: Size × Size similarities of single units.</param>
    /// <param name="unitGroups">C: UnitGroups × UnitGroups similarities of unit groups; empty when no axis is indexed by unit groups (C = 0).</param>
    public static int[] Solve(PermutationGroup group, double[] units, double[] unitGroups)
    {
        int n = group.Size, r = group.GroupSize, k = group.UnitGroups;
        bool hasGroupTerm = unitGroups.Length != 0;
        // Without a group term S is solved in place: at n = 8192 a combined copy would be another 512 MiB.
        if (r == 1 && !hasGroupTerm) return LinearAssignment.Solve(units, n);
        if (r == 1)
        {
            var combined = (double[])units.Clone();
            for (int i = 0; i < combined.Length; i++) combined[i] += unitGroups[i];
            return LinearAssignment.Solve(combined, n);
        }

        var outer = new double[k * k];
        var inner = new int[k * k][];
        var block = new double[r * r];
        for (int g = 0; g < k; g++)
        {
            for (int h = 0; h < k; h++)
            {
                for (int t = 0; t < r; t++)
                    for (int u = 0; u < r; u++) block[t * r + u] = units[(g * r + t) * n + h * r + u];
                int[] within = LinearAssignment.Solve(block, r);
                inner[g * k + h] = within;
                outer[g * k + h] = (hasGroupTerm ? unitGroups[g * k + h] : 0) + LinearAssignment.Objective(block, r, within);
            }
        }

        int[] sigma = LinearAssignment.Solve(outer, k);
        var permutation = new int[n];
        for (int g = 0; g < k; g++)
        {
            int[] within = inner[g * k + sigma[g]];
            for (int t = 0; t < r; t++) permutation[g * r + t] = sigma[g] * r + within[t];
        }

        return permutation;
    }

    /// <summary><c>Σᵢ S[i, p(i)] + Σ_g C[g, p(g·r)/r]</c>: the group's share of the weight-matching objective.</summary>
    public static double Objective(PermutationGroup group, double[] units, double[] unitGroups, ReadOnlySpan<int> permutation)
    {
        int n = group.Size, r = group.GroupSize, k = group.UnitGroups;
        double total = LinearAssignment.Objective(units, n, permutation);
        if (unitGroups.Length == 0) return total;
        for (int g = 0; g < k; g++) total += unitGroups[g * k + permutation[g * r] / r];
        return total;
    }
}
