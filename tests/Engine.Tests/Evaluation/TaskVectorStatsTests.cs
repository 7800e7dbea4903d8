using Weld.Engine.Evaluation;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>Diff statistics against a plain reference computed here (float64, sort-based top-k).</summary>
public class TaskVectorStatsTests
{
    [Fact]
    public void Hand_checked_small_case()
    {
        float[] a = [1, -2, 0, 3], b = [1, 2, 5, -3];
        TaskVectorStats s = TaskVectorStats.Compute(a, b, b, [0.5]);
        Assert.Equal(4, s.Elements);
        Assert.Equal(Math.Sqrt(14), s.NormA, 12);
        Assert.Equal(Math.Sqrt(39), s.NormB, 12);
        Assert.Equal((1 - 4 + 0 - 9) / Math.Sqrt(14 * 39), s.Cosine, 12);
        Assert.Equal(0.5, s.SignConflictRate); // indices 1 and 3; index 2 has a zero
        Assert.Equal(Math.Sqrt(0 + 16 + 25 + 36), s.DifferenceNorm, 12);
        Assert.Equal(Math.Sqrt(77) / Math.Sqrt(39), s.RelativeDifference, 12);
        // k = 2. Top-2 indices by |a|: {3, 1}; by |b|: {2, 3}; one in common.
        Assert.Equal(new TopKOverlap(0.5, 0.5, 0.5), s.Overlaps[0]);
    }

    [Theory]
    [InlineData(1, 1001)]
    [InlineData(2, 4096)]
    [InlineData(3, 7)]
    public void Random_vectors_match_a_scalar_reference(int seed, int n)
    {
        var random = new Random(seed);
        float[] a = new float[n], b = new float[n], w = new float[n];
        for (int i = 0; i < n; i++)
        {
            // Quantized so that zeros and equal magnitudes (ties at the threshold) occur.
            a[i] = random.Next(-20, 21) / 8f;
            b[i] = random.Next(-20, 21) / 8f;
            w[i] = (float)random.NextDouble();
        }

        double[] densities = [0.1, 0.3, 0.5, 1.0];
        TaskVectorStats s = TaskVectorStats.Compute(a, b, w, densities);
        double aa = 0, bb = 0, ab = 0, dd = 0, ww = 0;
        int conflicts = 0;
        for (int i = 0; i < n; i++)
        {
            aa += (double)a[i] * a[i];
            bb += (double)b[i] * b[i];
            ab += (double)a[i] * b[i];
            dd += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            ww += (double)w[i] * w[i];
            if (a[i] != 0 && b[i] != 0 && Math.Sign(a[i]) != Math.Sign(b[i])) conflicts++;
        }

        Assert.Equal(Math.Sqrt(aa), s.NormA, 9);
        Assert.Equal(Math.Sqrt(bb), s.NormB, 9);
        Assert.Equal(ab / Math.Sqrt(aa * bb), s.Cosine, 12);
        Assert.Equal((double)conflicts / n, s.SignConflictRate, 15);
        Assert.Equal(Math.Sqrt(dd), s.DifferenceNorm, 9);
        Assert.Equal(Math.Sqrt(dd / ww), s.RelativeDifference, 9);
        for (int d = 0; d < densities.Length; d++)
        {
            int k = (int)Math.Floor(densities[d] * n);
            HashSet<int> topA = TopK(a, k), topB = TopK(b, k);
            int both = topA.Count(topB.Contains);
            Assert.Equal(k == 0 ? 0 : (double)both / k, s.Overlaps[d].AInB, 15);
            Assert.Equal(s.Overlaps[d].AInB, s.Overlaps[d].BInA);
        }
    }

    /// <summary>Indices of the k largest |x|, ties to the lower index.</summary>
    private static HashSet<int> TopK(float[] x, int k) =>
        Enumerable.Range(0, x.Length).OrderByDescending(i => Math.Abs(x[i])).ThenBy(i => i).Take(k).ToHashSet();

    [Fact]
    public void Identical_vectors_agree_fully()
    {
        float[] a = [0.5f, -1, 2, 0, -3];
        TaskVectorStats s = TaskVectorStats.Compute(a, a, a, TaskVectorStats.DefaultDensities);
        Assert.Equal(1, s.Cosine, 12);
        Assert.Equal(0, s.SignConflictRate);
        Assert.Equal(0, s.DifferenceNorm);
        Assert.Equal(0.0, s.Overlaps[0].AInB); // k = ⌊0.5⌋ = 0: nothing kept
        Assert.Equal(1.0, s.Overlaps[2].AInB); // k = 2
    }

    [Fact]
    public void Lengths_and_densities_are_checked()
    {
        Assert.Throws<ArgumentException>(() => TaskVectorStats.Compute(new float[3], new float[4], new float[3], []));
        Assert.Throws<ArgumentException>(() => TaskVectorStats.Compute(new float[3], new float[3], new float[3], [1.5]));
    }
}
