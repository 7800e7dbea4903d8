namespace Weld.Engine.Tests.Methods;

/// <summary>
/// Plain scalar versions of mergekit's merge equations, written straight from its definitions (sorts instead
/// of radix select, loops instead of kernels), to check the methods against.
/// </summary>
internal static class ScalarReference
{
    /// <summary>Top-k by |x| with a stable descending sort (lowest index wins ties); NaN counts as largest.</summary>
    public static float[] TopK(float[] x, long k)
    {
        int[] order = Enumerable.Range(0, x.Length).ToArray();
        Array.Sort(order, (a, b) =>
        {
            int c = Key(x[b]).CompareTo(Key(x[a]));
            return c != 0 ? c : a.CompareTo(b);
        });
        var result = new float[x.Length];
        for (int i = 0; i < k && i < x.Length; i++) result[order[i]] = x[order[i]];
        return result;
    }

    /// <summary>Keeps positions [dropBottom, n − dropTop) of the stable ascending (|x|, index) order.</summary>
    public static float[] Band(float[] x, long dropBottom, long dropTop)
    {
        int[] order = Enumerable.Range(0, x.Length).ToArray();
        Array.Sort(order, (a, b) =>
        {
            int c = Key(x[a]).CompareTo(Key(x[b]));
            return c != 0 ? c : a.CompareTo(b);
        });
        var result = new float[x.Length];
        for (long i = dropBottom; i < x.Length - dropTop; i++) result[order[i]] = x[order[i]];
        return result;
    }

    private static uint Key(float v) => BitConverter.SingleToUInt32Bits(v) & 0x7FFFFFFFu;

    /// <summary>
    /// Generalized task arithmetic: deltas, per-model sparsify (given as a function), weights, optional sign
    /// consensus ("sum"), normalize, lambda, + base — in float32, the operations in mergekit's order.
    /// </summary>
    public static float[] TaskVectors(float[] baseline, float[][] models, float[] weights, Func<int, float[], float[]> sparsify,
        bool signConsensus, bool normalize, float lambda)
    {
        int n = baseline.Length, k = models.Length;
        var weighted = new float[k][];
        for (int m = 0; m < k; m++)
        {
            var delta = new float[n];
            for (int i = 0; i < n; i++) delta[i] = models[m][i] - baseline[i];
            delta = sparsify(m, delta);
            weighted[m] = new float[n];
            for (int i = 0; i < n; i++) weighted[m][i] = delta[i] * weights[m];
        }
        var result = new float[n];
        float weightSum = 0;
        foreach (float w in weights) weightSum += w;
        for (int i = 0; i < n; i++)
        {
            float mixed = 0, divisor = 0;
            if (signConsensus)
            {
                float s = 0;
                for (int m = 0; m < k; m++) s += weighted[m][i];
                float elected = s >= 0 ? 1 : -1;
                for (int m = 0; m < k; m++)
                {
                    if (MathF.Sign(weighted[m][i]) == elected)
                    {
                        mixed += weighted[m][i];
                        divisor += weights[m];
                    }
                }
                if (divisor == 0) divisor = 1;
            }
            else
            {
                for (int m = 0; m < k; m++) mixed += weighted[m][i];
                divisor = MathF.Abs(weightSum) < 1e-8f ? 1 : weightSum;
            }
            if (normalize) mixed /= divisor;
            if (lambda != 1) mixed *= lambda;
            result[i] = baseline[i] + mixed;
        }
        return result;
    }
}
