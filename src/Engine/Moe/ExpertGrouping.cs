namespace Weld.Engine.Moe;

/// <summary>One layer's grouping of its experts around dominant ones.</summary>
/// <param name="Dominant">The dominant expert of each group, in output order (ascending original index).</param>
/// <param name="GroupOf">For each original expert, the index of its group (into <paramref name="Dominant"/>).</param>
public sealed record ExpertGroups(int[] Dominant, int[] GroupOf)
{
    /// <summary>The original experts of group <paramref name="group"/>, its dominant expert first, then ascending.</summary>
    public int[] Members(int group)
    {
        var members = new List<int> { Dominant[group] };
        for (int e = 0; e < GroupOf.Length; e++)
            if (GroupOf[e] == group && e != Dominant[group]) members.Add(e);
        return [.. members];
    }
}

/// <summary>
/// MC-SMoE's routing-guided grouping (Li et al., "Merge, Then Compress", ICLR 2024, §3.2): the K most frequently
/// activated experts of a layer are dominant, one per group; every other expert joins the group of the dominant
/// expert whose router-logit vector is most similar to its own (cosine).
/// </summary>
public static class ExpertGrouping
{
    /// <summary>Groups one layer's experts.</summary>
    /// <param name="frequency">Each expert's activation frequency.</param>
    /// <param name="similarity">E × E similarities (row-major); only the rows of non-dominant experts are read.</param>
    /// <param name="groups">K, the number of groups: 1 ≤ K ≤ E.</param>
    /// <returns>The groups, numbered by ascending dominant index.</returns>
    /// <remarks>
    /// Ties: equal frequencies rank the lower expert index first; equal similarities pick the dominant expert ranked
    /// first by frequency (MC-SMoE's <c>argmax</c> over the dominant experts in frequency order).
    /// </remarks>
    public static ExpertGroups Group(ReadOnlySpan<double> frequency, ReadOnlySpan<double> similarity, int groups)
    {
        int e = frequency.Length;
        ArgumentOutOfRangeException.ThrowIfNotEqual(similarity.Length, e * e, nameof(similarity));
        ArgumentOutOfRangeException.ThrowIfLessThan(groups, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(groups, e);

        var byFrequency = new int[e];
        for (int i = 0; i < e; i++) byFrequency[i] = i;
        double[] f = frequency.ToArray();
        Array.Sort(byFrequency, (a, b) => f[a] != f[b] ? f[b].CompareTo(f[a]) : a.CompareTo(b));

        int[] dominantByRank = byFrequency[..groups];
        int[] dominant = [.. dominantByRank];
        Array.Sort(dominant);
        var groupOf = new int[e];
        Array.Fill(groupOf, -1);
        for (int g = 0; g < groups; g++) groupOf[dominant[g]] = g;

        for (int rank = groups; rank < e; rank++)
        {
            int expert = byFrequency[rank];
            int best = dominantByRank[0];
            for (int d = 1; d < groups; d++)
                if (similarity[expert * e + dominantByRank[d]] > similarity[expert * e + best]) best = dominantByRank[d];
            groupOf[expert] = groupOf[best];
        }

        return new ExpertGroups(dominant, groupOf);
    }
}
