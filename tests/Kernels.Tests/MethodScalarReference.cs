namespace Weld.Kernels.Tests;

/// <summary>
/// Plain scalar references for the newer methods' kernels, written from the <see cref="IMergeKernels"/> contract
/// (float32 operations as float64 rounded once, see <see cref="ScalarReference"/>).
/// </summary>
internal static class MethodScalarReference
{
    public static float Sub(float a, float b) => (float)((double)a - b);

    /// <summary>Per element: the largest key over the rows first, then the first row holding it.</summary>
    public static float[] LargestMagnitude(float[] stacked, int rows, int n)
    {
        var output = new float[n];
        for (int i = 0; i < n; i++)
        {
            uint largest = 0;
            for (int k = 0; k < rows; k++)
                largest = Math.Max(largest, ScalarReference.Key(stacked[k * n + i]));
            int first = 0;
            while (ScalarReference.Key(stacked[first * n + i]) != largest)
                first++;
            output[i] = stacked[first * n + i];
        }
        return output;
    }

    public static bool TallBit(float own, float all, float lambda) =>
        Math.Abs(own) >= ScalarReference.Mul(lambda, Math.Abs(Sub(all, own)));

    public static (byte[] Packed, long Set) TallMask(float[] task, float[] multiTask, float lambda)
    {
        var packed = new byte[(task.Length + 7) / 8];
        long set = 0;
        for (int i = 0; i < task.Length; i++)
        {
            if (!TallBit(task[i], multiTask[i], lambda))
                continue;
            packed[i / 8] += (byte)(1 << (i % 8));
            set++;
        }
        return (packed, set);
    }

    public static float[] TallRestore(float[] baseline, float[] multiTask, byte[] packed)
    {
        var output = new float[baseline.Length];
        for (int i = 0; i < output.Length; i++)
        {
            bool kept = (packed[i / 8] & (1 << (i % 8))) != 0;
            output[i] = kept ? ScalarReference.Add(baseline[i], multiTask[i]) : baseline[i];
        }
        return output;
    }

    public static float[] Consensus(float[] stacked, float[] lambdas, int minAgreeing, int n)
    {
        var output = new float[n];
        for (int i = 0; i < n; i++)
        {
            float sum = 0f;
            for (int k = 0; k < lambdas.Length; k++)
                sum = ScalarReference.Add(sum, stacked[k * n + i]);
            int agreeing = 0;
            for (int k = 0; k < lambdas.Length; k++)
                agreeing += TallBit(stacked[k * n + i], sum, lambdas[k]) ? 1 : 0;
            output[i] = agreeing >= minAgreeing ? sum : 0f;
        }
        return output;
    }

    public static float[] Fisher(float[] models, float[] fisher, float[] weights, float epsilon, int n)
    {
        var output = new float[n];
        for (int i = 0; i < n; i++)
        {
            float numerator = 0f, denominator = 0f;
            for (int k = 0; k < weights.Length; k++)
            {
                float f = ScalarReference.Mul(weights[k], fisher[k * n + i]);
                numerator = ScalarReference.Add(numerator, ScalarReference.Mul(f, models[k * n + i]));
                denominator = ScalarReference.Add(denominator, f);
            }
            // MathF.Max keeps a NaN; ε > 0 in every test.
            output[i] = ScalarReference.Div(numerator, MathF.Max(denominator, epsilon));
        }
        return output;
    }

    public static float[] NearSwap(float[] v0, float[] v1, float t)
    {
        var output = new float[v0.Length];
        for (int i = 0; i < v0.Length; i++)
        {
            float w = ScalarReference.Mul(ScalarReference.Div(1f, Math.Abs(Sub(v0[i], v1[i]))), t);
            if (float.IsNaN(w) || float.IsInfinity(w))
                w = 1f;
            else if (w < 0f)
                w = 0f;
            else if (w > 1f)
                w = 1f;
            output[i] = ScalarReference.Add(ScalarReference.Mul(w, v1[i]), ScalarReference.Mul(Sub(1f, w), v0[i]));
        }
        return output;
    }

    public static int Contributors(float[] deltas, int rows, int n, int i, float epsilon)
    {
        int contributors = 0;
        for (int k = 0; k < rows; k++)
            contributors += Math.Abs(deltas[k * n + i]) > epsilon ? 1 : 0;
        return contributors;
    }

    public static float[] Ram(float[] deltas, float[] baseline, float[] scales, float epsilon)
    {
        int n = baseline.Length, rows = scales.Length;
        var output = new float[n];
        for (int i = 0; i < n; i++)
        {
            int c = Contributors(deltas, rows, n, i, epsilon);
            float unique = c == 1 ? 1f : 0f, shared = c > 1 ? 1f : 0f, divisor = Math.Max(c, 1);
            float merged = 0f;
            for (int k = 0; k < rows; k++)
            {
                float delta = deltas[k * n + i];
                float z = ScalarReference.Mul(delta, Math.Abs(delta) > epsilon ? 1f : 0f);
                float term = ScalarReference.Add(
                    ScalarReference.Mul(ScalarReference.Mul(z, unique), scales[k]),
                    ScalarReference.Div(ScalarReference.Mul(z, shared), divisor));
                merged = ScalarReference.Add(merged, term);
            }
            output[i] = ScalarReference.Add(baseline[i], merged);
        }
        return output;
    }

    public static (long[] Shared, long[] Unique) RamCounts(float[] deltas, int rows, float epsilon)
    {
        int n = rows == 0 ? 0 : deltas.Length / rows;
        var shared = new long[rows];
        var unique = new long[rows];
        for (int i = 0; i < n; i++)
        {
            int c = Contributors(deltas, rows, n, i, epsilon);
            for (int k = 0; k < rows; k++)
            {
                if (!(Math.Abs(deltas[k * n + i]) > epsilon))
                    continue;
                if (c == 1)
                    unique[k]++;
                else
                    shared[k]++;
            }
        }
        return (shared, unique);
    }

    /// <summary>Population variance across rows in float64, rounded once; the count of outputs that are not ±0.</summary>
    public static (float[] Variance, long Nonzero) Variance(float[] stacked, int rows, int n)
    {
        var output = new float[n];
        long nonzero = 0;
        for (int i = 0; i < n; i++)
        {
            double total = 0;
            for (int k = 0; k < rows; k++)
                total += stacked[k * n + i];
            double mean = total / rows, squares = 0;
            for (int k = 0; k < rows; k++)
                squares += (stacked[k * n + i] - mean) * (stacked[k * n + i] - mean);
            output[i] = (float)(squares / rows);
            nonzero += output[i] == 0f ? 0 : 1;
        }
        return (output, nonzero);
    }

    public static float[] ClearRowsWhereZero(float[] stacked, float[] selector)
    {
        float[] output = (float[])stacked.Clone();
        for (int j = 0; j < output.Length; j++)
        {
            if (selector[j % selector.Length] == 0f)
                output[j] = 0f;
        }
        return output;
    }

    public static float[] SignErasedMix(float[] deltas, float[] weights, float floor, int n)
    {
        var output = new float[n];
        for (int i = 0; i < n; i++)
        {
            float sum = 0f;
            for (int k = 0; k < weights.Length; k++)
                sum = ScalarReference.Add(sum, deltas[k * n + i]);
            int elected = sum >= 0f ? 1 : -1;
            float mixed = 0f, divisor = 0f;
            for (int k = 0; k < weights.Length; k++)
            {
                float delta = deltas[k * n + i];
                int sign = delta > 0f ? 1 : delta < 0f ? -1 : 0;
                float erased = sign == elected ? weights[k] : 0f;
                mixed = ScalarReference.Add(mixed, ScalarReference.Mul(delta, erased));
                divisor = ScalarReference.Add(divisor, erased);
            }
            output[i] = ScalarReference.Div(mixed, divisor < floor ? floor : divisor);
        }
        return output;
    }
}
