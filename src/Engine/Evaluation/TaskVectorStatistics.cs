namespace Weld.Engine.Evaluation;

/// <summary>How much the top-k (by magnitude) elements of two vectors coincide at one density.</summary>
/// <param name="Density">Fraction of elements kept: k = ⌊density·n⌋.</param>
/// <param name="AInB">Fraction of A's top-k elements that are also in B's top-k.</param>
/// <param name="BInA">Fraction of B's top-k elements that are also in A's top-k.</param>
public readonly record struct TopKOverlap(double Density, double AInB, double BInA);

/// <summary>
/// Statistics comparing two vectors τ_A and τ_B of equal length: task vectors (fine-tune − base) when a base is
/// given, the raw weights otherwise.
/// </summary>
/// <param name="Elements">Vector length.</param>
/// <param name="NormA">‖τ_A‖₂.</param>
/// <param name="NormB">‖τ_B‖₂.</param>
/// <param name="Cosine">⟨τ_A, τ_B⟩ / (‖τ_A‖·‖τ_B‖); 0 when either norm is 0.</param>
/// <param name="SignConflictRate">Fraction of all elements where both are non-zero and their signs differ.</param>
/// <param name="DifferenceNorm">‖τ_A − τ_B‖₂ (= ‖A − B‖ with or without a base).</param>
/// <param name="RelativeDifference">‖A − B‖ / ‖B‖ where B is the second model's weights; 0 when ‖B‖ = 0.</param>
/// <param name="Overlaps">Top-k overlap at each requested density.</param>
public sealed record TaskVectorStats(long Elements, double NormA, double NormB, double Cosine, double SignConflictRate,
    double DifferenceNorm, double RelativeDifference, IReadOnlyList<TopKOverlap> Overlaps)
{
    /// <summary>The densities <c>weld diff</c> reports overlaps at.</summary>
    public static IReadOnlyList<double> DefaultDensities { get; } = [0.1, 0.3, 0.5];

    /// <summary>
    /// Compares <paramref name="tauA"/> and <paramref name="tauB"/>; <paramref name="weightsB"/> (B's own weights, the
    /// same as <paramref name="tauB"/> without a base) only scales <see cref="RelativeDifference"/>. Sums in float64.
    /// </summary>
    /// <exception cref="ArgumentException">The spans differ in length, or a density is outside (0, 1].</exception>
    public static TaskVectorStats Compute(ReadOnlySpan<float> tauA, ReadOnlySpan<float> tauB, ReadOnlySpan<float> weightsB,
        IReadOnlyList<double> densities)
    {
        ArgumentNullException.ThrowIfNull(densities);
        if (tauA.Length != tauB.Length || weightsB.Length != tauA.Length)
            throw new ArgumentException($"vectors of different lengths ({tauA.Length}, {tauB.Length}, {weightsB.Length}).");
        double aa = 0, bb = 0, ab = 0, dd = 0, ww = 0;
        long conflicts = 0;
        for (int i = 0; i < tauA.Length; i++)
        {
            double a = tauA[i], b = tauB[i], d = a - b, w = weightsB[i];
            aa += a * a;
            bb += b * b;
            ab += a * b;
            dd += d * d;
            ww += w * w;
            // Both non-zero with opposite signs: the product is negative.
            if (a * b < 0) conflicts++;
        }

        double normA = Math.Sqrt(aa), normB = Math.Sqrt(bb), normW = Math.Sqrt(ww);
        var overlaps = new TopKOverlap[densities.Count];
        if (densities.Count > 0)
        {
            var inA = new bool[tauA.Length];
            var inB = new bool[tauB.Length];
            for (int d = 0; d < densities.Count; d++)
            {
                double density = densities[d];
                if (!(density > 0 && density <= 1))
                    throw new ArgumentException($"density {density} is outside (0, 1].", nameof(densities));
                long k = (long)Math.Floor(density * tauA.Length);
                MarkTopK(tauA, k, inA);
                MarkTopK(tauB, k, inB);
                long both = 0;
                for (int i = 0; i < inA.Length; i++)
                    if (inA[i] && inB[i]) both++;
                double fraction = k == 0 ? 0 : (double)both / k;
                overlaps[d] = new TopKOverlap(density, fraction, fraction);
            }
        }

        return new TaskVectorStats(tauA.Length, normA, normB,
            normA > 0 && normB > 0 ? ab / (normA * normB) : 0,
            tauA.Length == 0 ? 0 : (double)conflicts / tauA.Length,
            Math.Sqrt(dd), normW > 0 ? Math.Sqrt(dd) / normW : 0, overlaps);
    }

    /// <summary>
    /// Marks exactly <paramref name="k"/> elements of largest magnitude: all above the k-th largest magnitude, then
    /// those equal to it in index order (the tie rule of <c>TopKSelection</c>).
    /// </summary>
    internal static void MarkTopK(ReadOnlySpan<float> values, long k, Span<bool> mark)
    {
        mark.Clear();
        if (k <= 0) return;
        var magnitudes = new float[values.Length];
        for (int i = 0; i < values.Length; i++) magnitudes[i] = MathF.Abs(values[i]);
        Array.Sort(magnitudes);
        float threshold = magnitudes[(int)(values.Length - k)];
        long above = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (MathF.Abs(values[i]) > threshold)
            {
                mark[i] = true;
                above++;
            }
        }

        long atThreshold = k - above;
        for (int i = 0; i < values.Length && atThreshold > 0; i++)
        {
            if (MathF.Abs(values[i]) == threshold)
            {
                mark[i] = true;
                atThreshold--;
            }
        }
    }
}
