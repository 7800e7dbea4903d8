using Weld.Kernels;
using Weld.Kernels.Random;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// Plain scalar versions of mergekit's remaining merge methods (and Weld's MagMax / paper Breadcrumbs), written from
/// the Python source's definitions step by step: explicit unit vectors, explicit masks, sorts instead of selects.
/// Where mergekit works in float32 element by element the reference does too (so results compare bit for bit);
/// its whole-tensor geometry (norms, angles) is done in float64 and compared with a tolerance.
/// </summary>
internal static class MergeKitReference
{
    // ---- della_magprune -------------------------------------------------------------------------------------------

    /// <summary>
    /// mergekit's della_magprune mask: ranks along dim 1 (1-D: the whole tensor) by a stable sort of |x|,
    /// p = (d − ε) + rank_norm·2·ε in float32, kept iff the Philox uniform of the flat index is below p.
    /// </summary>
    public static float[] DellaMagprune(float[] delta, long[] shape, double density, double epsilon, PhiloxKey key, bool divideByP = false)
    {
        var result = (float[])delta.Clone();
        foreach (int[] fiber in FibersAlongDim1(shape, delta.Length))
        {
            int[] byMagnitude = fiber.OrderBy(i => Math.Abs((double)delta[i])).ToArray(); // OrderBy is stable
            for (int s = 0; s < byMagnitude.Length; s++)
            {
                int index = byMagnitude[s];
                float rank = s + 1, minRank = 1, maxRank = fiber.Length;
                float rankNorm = Math.Clamp((rank - minRank) / (maxRank - minRank), 0f, 1f);
                float p = (float)(density - epsilon) + rankNorm * 2f * (float)epsilon;
                float u = Philox4x32.ToUniform(Philox4x32.ElementBits(key, index));
                if (!(u < p)) result[index] = 0f;
                else if (divideByP) result[index] = delta[index] / p;
            }
        }
        return result;
    }

    /// <summary>Flat indices of each fiber along dim 1 (torch's argsort(dim=1) after unsqueezing 1-D tensors).</summary>
    public static List<int[]> FibersAlongDim1(long[] shape, int n)
    {
        var fibers = new List<int[]>();
        if (shape.Length < 2)
        {
            fibers.Add(Enumerable.Range(0, n).ToArray());
            return fibers;
        }
        int d0 = (int)shape[0], d1 = (int)shape[1], inner = n / (d0 * d1);
        for (int o = 0; o < d0; o++)
            for (int j = 0; j < inner; j++)
                fibers.Add(Enumerable.Range(0, d1).Select(r => o * d1 * inner + r * inner + j).ToArray());
        return fibers;
    }

    /// <summary>rescaled_masked_tensor with the L1 norm: masked · (‖δ‖₁ / ‖masked‖₁), skipped below 1e-7.</summary>
    public static float[] RescaleL1(float[] original, float[] masked)
    {
        double before = original.Sum(x => (double)Math.Abs(x)), after = masked.Sum(x => (double)Math.Abs(x));
        float b = (float)before, a = (float)after;
        if (b < 1e-7f || a < 1e-7f) return masked;
        float factor = b / a;
        return masked.Select(x => x * factor).ToArray();
    }

    // ---- sce ------------------------------------------------------------------------------------------------------

    public static float[] Sce(float[] baseline, float[][] models, double selectTopK)
    {
        int n = baseline.Length, k = models.Length;
        float[][] tv = models.Select(m => m.Select((x, i) => x - baseline[i]).ToArray()).ToArray();
        if (selectTopK < 1)
        {
            var variance = new double[n];
            for (int i = 0; i < n; i++)
            {
                double mean = tv.Average(t => (double)t[i]);
                variance[i] = (float)(tv.Sum(t => (t[i] - mean) * (t[i] - mean)) / k);
            }
            int nonzero = variance.Count(v => v != 0);
            int keep = (int)(selectTopK * nonzero);
            var kept = new HashSet<int>(Enumerable.Range(0, n).OrderByDescending(i => variance[i]).Take(keep));
            foreach (float[] t in tv)
                for (int i = 0; i < n; i++)
                    if (!kept.Contains(i)) t[i] = 0f;
        }
        double[] energy = tv.Select(t => t.Sum(x => (double)x * x) / n).ToArray();
        double total = energy.Sum();
        float[] weights = energy.Select(e => (float)(Math.Abs(total) < 1e-6 ? 1.0 / k : e / total)).ToArray();

        var result = new float[n];
        for (int i = 0; i < n; i++)
        {
            float signWeight = 0;
            for (int m = 0; m < k; m++) signWeight += tv[m][i];
            int majority = signWeight >= 0 ? 1 : -1;
            float mixed = 0, divisor = 0;
            for (int m = 0; m < k; m++)
            {
                float erased = Math.Sign(tv[m][i]) == majority ? weights[m] : 0f;
                mixed += tv[m][i] * erased;
                divisor += erased;
            }
            result[i] = baseline[i] + mixed / Math.Max(divisor, 1e-6f); // sum(erased).clamp(min=1e-6)
        }
        return result;
    }

    // ---- nuslerp --------------------------------------------------------------------------------------------------

    /// <summary>mergekit's nuslerp over explicit vectors (rows of the last dimension, or the whole tensor).</summary>
    public static float[] NuSlerp(float[]? baseline, float[] x1, float[] x2, double w1, double w2, int vectorLength, bool columns = false, int rows = 0)
    {
        int n = x1.Length;
        double t = Math.Abs(w1 + w2) < 1e-6 ? 0.5 : w2 / (w1 + w2);
        double[] v0 = x1.Select((x, i) => (double)(baseline is null ? x : x - baseline[i])).ToArray();
        double[] v1 = x2.Select((x, i) => (double)(baseline is null ? x : x - baseline[i])).ToArray();
        var result = new float[n];
        List<int[]> vectors = columns
            ? Enumerable.Range(0, n / rows).Select(c => Enumerable.Range(0, rows).Select(r => r * (n / rows) + c).ToArray()).ToList()
            : Enumerable.Range(0, n / vectorLength).Select(r => Enumerable.Range(r * vectorLength, vectorLength).ToArray()).ToList();
        foreach (int[] vector in vectors)
        {
            double n0 = Math.Max(Math.Sqrt(vector.Sum(i => v0[i] * v0[i])), 1e-7);
            double n1 = Math.Max(Math.Sqrt(vector.Sum(i => v1[i] * v1[i])), 1e-7);
            double cos = vector.Sum(i => v0[i] / n0 * (v1[i] / n1));
            double theta = Math.Acos(Math.Clamp(cos, -1, 1));
            double sin = Math.Sin(theta);
            foreach (int i in vector)
            {
                double r = Math.Abs(sin) < 1e-8
                    ? (1 - t) * v0[i] + t * v1[i]
                    : (Math.Sin((1 - t) * theta) * v0[i] + Math.Sin(t * theta) * v1[i]) / sin;
                result[i] = (float)((baseline is null ? 0 : baseline[i]) + r);
            }
        }
        return result;
    }

    // ---- multislerp -----------------------------------------------------------------------------------------------

    public static float[] MultiSlerp(float[]? baseline, float[][] tensors, double[] weight, bool normalizeWeights = true, double eps = 1e-8)
    {
        if (tensors.Length == 1) return (float[])tensors[0].Clone();
        int n = tensors[0].Length, k = tensors.Length;
        double[][] v = tensors.Select(t => t.Select((x, i) => (double)(baseline is null ? x : x - baseline[i])).ToArray()).ToArray();
        double[] w = normalizeWeights ? weight.Select(x => x / weight.Sum()).ToArray() : weight;
        double[] norms = v.Select(x => Math.Sqrt(x.Sum(e => e * e))).ToArray();
        double[][] units = v.Select((x, m) => x.Select(e => e / (norms[m] + eps)).ToArray()).ToArray();
        var mean = new double[n];
        for (int m = 0; m < k; m++)
            for (int i = 0; i < n; i++) mean[i] += units[m][i] * w[m];
        double meanNorm = Math.Sqrt(mean.Sum(e => e * e));
        if (meanNorm < eps)
            return Enumerable.Range(0, n).Select(i => (float)(v[0][i] * w[0] + v[1][i] * w[1] + (baseline?[i] ?? 0))).ToArray();
        for (int i = 0; i < n; i++) mean[i] /= meanNorm;
        var tangentResult = new double[n];
        for (int m = 0; m < k; m++)
        {
            double dot = 0;
            for (int i = 0; i < n; i++) dot += units[m][i] * mean[i];
            for (int i = 0; i < n; i++) tangentResult[i] += (units[m][i] - dot * mean[i]) * w[m];
        }
        double tangentNorm = Math.Sqrt(tangentResult.Sum(e => e * e)) + eps;
        double averageNorm = norms.Select((x, m) => x * w[m]).Sum();
        return Enumerable.Range(0, n).Select(i =>
            (float)((mean[i] * Math.Cos(tangentNorm) + tangentResult[i] * (Math.Sin(tangentNorm) / tangentNorm)) * averageNorm
                + (baseline?[i] ?? 0))).ToArray();
    }

    // ---- karcher --------------------------------------------------------------------------------------------------

    public static float[] Karcher(float[][] tensors, int maxIterations = 10, double tol = 1e-5)
    {
        if (tensors.Length == 1) return (float[])tensors[0].Clone();
        int n = tensors[0].Length;
        double[] alphas = tensors.Select(_ => 1.0 / tensors.Length).ToArray();
        double[] norms = tensors.Select(t => Math.Sqrt(t.Sum(x => (double)x * x))).ToArray();
        double[][] units = tensors.Select((t, m) => t.Select(x => norms[m] == 0 ? 0 : x / norms[m]).ToArray()).ToArray();
        int[] valid = Enumerable.Range(0, tensors.Length).Where(m => norms[m] > tol).ToArray();
        if (valid.Length == 0) return new float[n];
        double alphaSum = valid.Sum(m => alphas[m]);
        double[] a = valid.Select(m => alphas[m] / alphaSum).ToArray();

        var u = new double[n];
        for (int j = 0; j < valid.Length; j++)
            for (int i = 0; i < n; i++) u[i] += a[j] * units[valid[j]][i];
        double normU = Math.Sqrt(u.Sum(x => x * x));
        u = normU < tol ? (double[])units[valid[0]].Clone() : u.Select(x => x / normU).ToArray();

        for (int iteration = 0; iteration < maxIterations; iteration++)
        {
            var tangent = new double[n];
            for (int j = 0; j < valid.Length; j++)
            {
                double[] ui = units[valid[j]];
                double dot = Math.Clamp(Enumerable.Range(0, n).Sum(i => u[i] * ui[i]), -1, 1);
                double theta = Math.Acos(dot);
                if (theta < tol) continue;
                for (int i = 0; i < n; i++) tangent[i] += a[j] * (theta / Math.Sin(theta)) * (ui[i] - dot * u[i]);
            }
            double normT = Math.Sqrt(tangent.Sum(x => x * x));
            if (normT < tol) break;
            u = Enumerable.Range(0, n).Select(i => Math.Cos(normT) * u[i] + Math.Sin(normT) * (tangent[i] / normT)).ToArray();
            double unitNorm = Math.Sqrt(u.Sum(x => x * x));
            if (unitNorm > tol) u = u.Select(x => x / unitNorm).ToArray();
        }
        double s = alphas.Select((x, m) => x * norms[m]).Sum();
        return u.Select(x => (float)(s * x)).ToArray();
    }

    // ---- nearswap -------------------------------------------------------------------------------------------------

    /// <summary>nearswap in torch's float32 order: t / d is Tensor.__rtruediv__, i.e. reciprocal(d) · t.</summary>
    public static float[] NearSwap(float[] v0, float[] v1, double t)
    {
        var result = new float[v0.Length];
        for (int i = 0; i < v0.Length; i++)
        {
            float d = Math.Abs(v0[i] - v1[i]);
            float w = 1f / d * (float)t;
            if (float.IsNaN(w) || float.IsInfinity(w)) w = 1f; // nan_to_num(nan=1, posinf=1, neginf=1)
            w = Math.Min(Math.Max(w, 0f), 1f);
            result[i] = w * v1[i] + (1f - w) * v0[i];
        }
        return result;
    }

    // ---- arcee_fusion ---------------------------------------------------------------------------------------------

    public static float[] ArceeFusion(float[] baseline, float[] model, int rowLength)
    {
        int n = baseline.Length;
        var importance = new float[n];
        for (int start = 0; start < n; start += rowLength)
        {
            float[] p = SoftmaxPlusFloor(model, start, rowLength), q = SoftmaxPlusFloor(baseline, start, rowLength);
            double kl = 0;
            for (int j = 0; j < rowLength; j++) kl += p[j] * Math.Log((double)p[j] / q[j]);
            for (int j = 0; j < rowLength; j++)
                importance[start + j] = Math.Abs(model[start + j] - baseline[start + j]) * (float)kl;
        }
        float[] sorted = importance.OrderBy(x => x).ToArray();
        float Quantile(float q) => sorted[(long)(q * (float)(sorted.Length - 1))];
        float threshold = Quantile(0.5f) + 1.5f * (Quantile(0.75f) - Quantile(0.25f));
        return Enumerable.Range(0, n).Select(i =>
            baseline[i] + (model[i] - baseline[i]) * (importance[i] >= threshold ? 1f : 0f)).ToArray();
    }

    private static float[] SoftmaxPlusFloor(float[] x, int start, int length)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < length; j++) max = Math.Max(max, x[start + j]);
        double[] e = Enumerable.Range(0, length).Select(j => Math.Exp(x[start + j] - max)).ToArray();
        double sum = e.Sum();
        return e.Select(v => (float)(v / sum) + 1e-8f).ToArray();
    }

    // ---- ram / ramplus_tl -----------------------------------------------------------------------------------------

    /// <summary>ram (r = 0) and ramplus_tl, following _prepare_ram_vectors and the merge sums in float32.</summary>
    public static float[] Ram(float[] baseline, float[][] models, float epsilon, bool plus = false, float r = 0.1f, float alpha = 0.2f)
    {
        int n = baseline.Length, k = models.Length;
        float[][] tv = models.Select(m => m.Select((x, i) => x - baseline[i]).ToArray()).ToArray();
        bool[][] nonzero = tv.Select(t => t.Select(x => Math.Abs(x) > epsilon).ToArray()).ToArray();
        int[] counts = Enumerable.Range(0, n).Select(i => nonzero.Count(z => z[i])).ToArray();
        var lambda = Enumerable.Repeat(1f, k).ToArray();
        if (plus)
        {
            for (int m = 0; m < k; m++)
            {
                int shared = Enumerable.Range(0, n).Count(i => nonzero[m][i] && counts[i] > 1);
                int unique = Enumerable.Range(0, n).Count(i => nonzero[m][i] && counts[i] == 1);
                float rho = shared / Math.Max(unique, epsilon);
                lambda[m] = 1 + r * Math.Clamp(rho, 0, alpha);
            }
        }
        var result = new float[n];
        for (int i = 0; i < n; i++)
        {
            float overlap = counts[i] > 1 ? 1 : 0, uniqueMask = counts[i] == 1 ? 1 : 0;
            float merged = 0;
            for (int m = 0; m < k; m++)
            {
                float z = tv[m][i] * (nonzero[m][i] ? 1 : 0);
                float term = z * uniqueMask;
                if (plus) term *= lambda[m];
                merged += term + z * overlap / Math.Max(counts[i], 1);
            }
            result[i] = baseline[i] + merged;
        }
        return result;
    }

    // ---- Weld: magmax, breadcrumbs_paper --------------------------------------------------------------------------

    public static float[] MagMax(float[] baseline, float[][] models, float lambda)
    {
        var result = new float[baseline.Length];
        for (int i = 0; i < baseline.Length; i++)
        {
            float best = models[0][i] - baseline[i];
            foreach (float[] m in models.Skip(1))
            {
                float d = m[i] - baseline[i];
                if (Math.Abs(d) > Math.Abs(best)) best = d; // strictly larger: the first model keeps ties
            }
            result[i] = baseline[i] + (lambda == 1 ? best : lambda * best);
        }
        return result;
    }

    /// <summary>Paper Breadcrumbs: drop the ⌊βn⌋ smallest and ⌊γn⌋ largest |δ| (stable order), Σ w·masked, λ, + base.</summary>
    public static float[] BreadcrumbsPaper(float[] baseline, float[][] models, double[] beta, double[] gamma, float[] weights, float lambda)
    {
        int n = baseline.Length;
        var sum = new float[n];
        for (int m = 0; m < models.Length; m++)
        {
            float[] delta = models[m].Select((x, i) => x - baseline[i]).ToArray();
            int[] order = Enumerable.Range(0, n).OrderBy(i => Math.Abs(delta[i])).ToArray();
            long bottom = (long)(beta[m] * n), top = (long)(gamma[m] * n);
            var keep = new bool[n];
            for (long s = bottom; s < n - top; s++) keep[order[s]] = true;
            for (int i = 0; i < n; i++) sum[i] += weights[m] * (keep[i] ? delta[i] : 0f);
        }
        return sum.Select((s, i) => baseline[i] + (lambda == 1 ? s : s * lambda)).ToArray();
    }
}
