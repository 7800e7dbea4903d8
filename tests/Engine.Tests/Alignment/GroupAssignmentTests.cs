using Weld.Engine.Alignment;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>The group-preserving assignment (GQA heads) against brute force over every admissible permutation.</summary>
public class GroupAssignmentTests
{
    [Theory]
    [InlineData(6, 2, 51)]
    [InlineData(6, 3, 52)]
    [InlineData(8, 2, 53)]
    [InlineData(8, 4, 54)]
    [InlineData(5, 1, 55)]
    public void Matches_brute_force_over_group_preserving_permutations(int size, int groupSize, int seed)
    {
        var random = new Random(seed);
        var group = new PermutationGroup("heads", size, [], groupSize);
        int k = size / groupSize;
        for (int trial = 0; trial < 10; trial++)
        {
            var units = new double[size * size];
            var unitGroups = new double[k * k];
            for (int i = 0; i < units.Length; i++) units[i] = random.NextDouble() * 2 - 1;
            for (int i = 0; i < unitGroups.Length; i++) unitGroups[i] = random.NextDouble() * 4 - 2;
            int[] solved = GroupAssignment.Solve(group, units, unitGroups);
            Assert.True(group.Admits(solved));

            // Brute force: every permutation of the units, scored directly, kept only when it keeps groups whole.
            double best = double.NegativeInfinity;
            int[] p = [.. Enumerable.Range(0, size)];
            do
            {
                if (!group.Admits(p)) continue;
                double score = 0;
                for (int i = 0; i < size; i++) score += units[i * size + p[i]];
                for (int g = 0; g < k; g++) score += unitGroups[g * k + p[g * groupSize] / groupSize];
                best = Math.Max(best, score);
            }
            while (Permutations.Next(p));
            Assert.Equal(best, GroupAssignment.Objective(group, units, unitGroups, solved), 9);
        }
    }

    [Fact]
    public void Index_maps_expand_units_to_blocks_and_groups()
    {
        var group = new PermutationGroup("heads", 4, [], 2);
        int[] permutation = [3, 2, 0, 1];
        Assert.Equal([6, 7, 4, 5, 0, 1, 2, 3], group.IndexMap(new PermutedAxis("q", 0, 2), permutation));
        // Per unit group: group 0 takes source group 1 (units 2, 3), group 1 takes source group 0.
        Assert.Equal([3, 4, 5, 0, 1, 2], group.IndexMap(new PermutedAxis("k", 0, 3, PerUnitGroup: true), permutation));
    }

}
