namespace Weld.Engine.Tests.Alignment;

/// <summary>Enumerates permutations in lexicographic order, for the brute-force references of the alignment tests.</summary>
internal static class Permutations
{
    /// <summary>Advances <paramref name="p"/> to the next permutation in lexicographic order; false after the last.</summary>
    public static bool Next(int[] p)
    {
        int i = p.Length - 2;
        while (i >= 0 && p[i] >= p[i + 1]) i--;
        if (i < 0) return false;
        int j = p.Length - 1;
        while (p[j] <= p[i]) j--;
        (p[i], p[j]) = (p[j], p[i]);
        Array.Reverse(p, i + 1, p.Length - i - 1);
        return true;
    }
}
