namespace Weld.Engine.Config;

/// <summary>Merge method names and "did you mean" suggestions for misspelt names and keys.</summary>
public static class MethodNames
{
    /// <summary>
    /// The merge methods mergekit registers (mergekit/merge_methods/registry.py and its easy_define methods).
    /// The parser accepts these names; whether Weld implements one is decided when the recipe is planned.
    /// </summary>
    public static IReadOnlyList<string> MergeKit { get; } =
    [
        "linear", "slerp", "nuslerp", "multislerp", "passthrough", "model_stock", "arcee_fusion", "karcher",
        "task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "della",
        "della_linear", "sce", "nearswap", "ram", "ramplus_tl",
    ];

    /// <summary>Merge methods Weld adds beyond mergekit's (papers' variants mergekit does not offer).</summary>
    public static IReadOnlyList<string> Weld { get; } = ["magmax", "breadcrumbs_paper", "fisher", "consensus", "divergence_weights", "tsv"];

    /// <summary>Every name the parser accepts: <see cref="MergeKit"/> followed by <see cref="Weld"/>.</summary>
    public static IReadOnlyList<string> Known { get; } = [.. MergeKit, .. Weld];

    /// <summary>
    /// The known name closest to <paramref name="given"/>, or <see langword="null"/> when none is close. Names are
    /// compared after folding case and treating <c>-</c>, <c>_</c> and spaces alike, then by edit distance
    /// (at most 2, or a third of the name's length for long names).
    /// </summary>
    /// <param name="given">The name the user wrote.</param>
    /// <param name="known">The valid names.</param>
    /// <returns>The suggestion, spelt as in <paramref name="known"/>, or <see langword="null"/>.</returns>
    public static string? Suggest(string given, IEnumerable<string> known)
    {
        ArgumentNullException.ThrowIfNull(given);
        ArgumentNullException.ThrowIfNull(known);
        string wanted = Normalize(given);
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in known)
        {
            int distance = Levenshtein(wanted, Normalize(candidate));
            if (distance < bestDistance)
            {
                bestDistance = distance;
                best = candidate;
            }
        }

        int allowed = Math.Max(2, wanted.Length / 3);
        return bestDistance <= allowed ? best : null;
    }

    /// <summary>Folds case and maps <c>-</c> and spaces to <c>_</c>, so <c>Dare-TIES</c> reads as <c>dare_ties</c>.</summary>
    /// <param name="name">The name.</param>
    /// <returns>The normalised name.</returns>
    public static string Normalize(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return string.Create(name.Length, name, static (span, source) =>
        {
            for (int i = 0; i < source.Length; i++)
            {
                char c = source[i];
                span[i] = c is '-' or ' ' ? '_' : char.ToLowerInvariant(c);
            }
        });
    }

    /// <summary>The edit distance (insertions, deletions, substitutions) between two strings.</summary>
    /// <param name="a">The first string.</param>
    /// <param name="b">The second string.</param>
    /// <returns>The number of single-character edits that turn <paramref name="a"/> into <paramref name="b"/>.</returns>
    public static int Levenshtein(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        // Two rolling rows: names are short, but there is no reason to allocate a full matrix.
        int[] previous = new int[b.Length + 1];
        int[] current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            previous[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j], current[j - 1]) + 1);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
