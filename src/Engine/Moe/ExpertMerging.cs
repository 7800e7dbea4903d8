using Weld.Engine.Alignment;
using Weld.Engine.Evaluation;

namespace Weld.Engine.Moe;

/// <summary>One SwiGLU expert: w1 (gate) and w3 (up) [inter, hidden], w2 (down) [hidden, inter], row-major float32.</summary>
/// <param name="W1">Gate projection.</param>
/// <param name="W2">Down projection.</param>
/// <param name="W3">Up projection.</param>
public sealed record ExpertWeights(float[] W1, float[] W2, float[] W3);

/// <summary>
/// M-SMoE's merge of one group (MC-SMoE §3.3): every member is permutation-aligned to the group's dominant expert
/// (weight matching: its hidden units — rows of w1 and w3, columns of w2 — reordered to maximise
/// ⟨W_dominant, π(W_member)⟩ summed over the three matrices), then the group is averaged with the members' activation
/// frequencies as weights: <c>W = Σᵢ fᵢ·πᵢ(Wᵢ) / Σᵢ fᵢ</c>.
/// </summary>
/// <remarks>
/// A permutation of an expert's hidden units leaves its function unchanged, so alignment only decides which units
/// are averaged together. When every frequency of the group is 0 (no calibration token chose any member), the
/// members are averaged uniformly. Sums run in float64.
/// </remarks>
public static class ExpertMerging
{
    private const string W1 = "w1", W2 = "w2", W3 = "w3";

    /// <summary>Merges <paramref name="members"/> (the dominant expert first) with weights <paramref name="frequency"/>.</summary>
    /// <param name="members">The group's experts, dominant first, all of the same shape.</param>
    /// <param name="frequency">Each member's activation frequency (≥ 0).</param>
    /// <param name="hidden">hidden_size.</param>
    /// <param name="intermediate">The experts' intermediate size.</param>
    /// <param name="seed">Seeds weight matching's visiting order (one group: no effect on the result).</param>
    /// <returns>The merged expert and, per member, the permutation applied to it (identity for the dominant).</returns>
    public static (ExpertWeights Merged, int[][] Permutations) Merge(IReadOnlyList<ExpertWeights> members, ReadOnlySpan<double> frequency,
        int hidden, int intermediate, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(members);
        return Merge(members.Count, m => members[m], frequency, hidden, intermediate, seed);
    }

    /// <summary>
    /// The same merge with the members read one at a time: <paramref name="member"/>(0) is the dominant expert, held
    /// throughout; every other member is requested once, aligned, added to the sums and dropped before the next.
    /// </summary>
    /// <param name="count">Members in the group.</param>
    /// <param name="member">Reads member m (0 = the dominant expert), called once per m in increasing order.</param>
    /// <param name="frequency">Each member's activation frequency (≥ 0).</param>
    /// <param name="hidden">hidden_size.</param>
    /// <param name="intermediate">The experts' intermediate size.</param>
    /// <param name="seed">Seeds weight matching's visiting order (one group: no effect on the result).</param>
    public static (ExpertWeights Merged, int[][] Permutations) Merge(int count, Func<int, ExpertWeights> member, ReadOnlySpan<double> frequency,
        int hidden, int intermediate, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(member);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNotEqual(frequency.Length, count, nameof(frequency));
        PermutationSpec spec = Spec(intermediate);
        ExpertWeights dominant = member(0);
        TensorSet reference = AsTensorSet(dominant, hidden, intermediate, "dominant expert");

        double total = 0;
        foreach (double f in frequency)
        {
            if (!(f >= 0) || !double.IsFinite(f)) throw new ArgumentException("frequencies must be finite and non-negative.", nameof(frequency));
            total += f;
        }

        var w1 = new double[dominant.W1.Length];
        var w2 = new double[dominant.W2.Length];
        var w3 = new double[dominant.W3.Length];
        var permutations = new int[count][];
        for (int m = 0; m < count; m++)
        {
            ExpertWeights expert = m == 0 ? dominant : member(m);
            int[] permutation;
            if (m == 0)
            {
                permutation = Identity(intermediate);
            }
            else
            {
                TensorSet model = AsTensorSet(expert, hidden, intermediate, $"member {m}");
                // One permutation group: the first sweep's assignment is already the optimum, a second would only confirm it.
                WeightMatchingResult matched = WeightMatching.Run(spec, reference, model, seed, maxIterations: 1);
                permutation = matched.Permutations[0];
                TensorSet aligned = WeightMatching.Apply(spec, model, matched.Permutations);
                expert = new ExpertWeights(aligned.Get(W1), aligned.Get(W2), aligned.Get(W3));
            }

            permutations[m] = permutation;
            double weight = total > 0 ? frequency[m] : 1;
            Accumulate(w1, expert.W1, weight);
            Accumulate(w2, expert.W2, weight);
            Accumulate(w3, expert.W3, weight);
        }

        double divisor = total > 0 ? total : count;
        return (new ExpertWeights(Divide(w1, divisor), Divide(w2, divisor), Divide(w3, divisor)), permutations);
    }

    /// <summary>The expert's hidden-unit symmetry: w1 and w3 rows and w2 columns permute together.</summary>
    public static PermutationSpec Spec(int intermediate) =>
        new([new PermutationGroup("expert.hidden", intermediate, [new(W1, 0), new(W3, 0), new(W2, 1)])]);

    private static TensorSet AsTensorSet(ExpertWeights expert, int hidden, int intermediate, string name)
    {
        var set = new TensorSet(name);
        set.Set(W1, [intermediate, hidden], expert.W1);
        set.Set(W2, [hidden, intermediate], expert.W2);
        set.Set(W3, [intermediate, hidden], expert.W3);
        return set;
    }

    private static int[] Identity(int n)
    {
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        return p;
    }

    private static void Accumulate(double[] sum, ReadOnlySpan<float> values, double weight)
    {
        for (int i = 0; i < sum.Length; i++) sum[i] += weight * values[i];
    }

    private static float[] Divide(double[] sum, double divisor)
    {
        var result = new float[sum.Length];
        for (int i = 0; i < sum.Length; i++) result[i] = (float)(sum[i] / divisor);
        return result;
    }
}
