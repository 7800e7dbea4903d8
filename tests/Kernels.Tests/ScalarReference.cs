namespace Weld.Kernels.Tests;

/// <summary>
/// Plain scalar references for every kernel, written from the contract and not from the kernels. Float32 arithmetic
/// is done in float64 and rounded once, which equals the correctly rounded float32 result for +, −, ×, ÷
/// (float64 has more than 2·24 + 2 bits), so the references cannot be bent by a fused multiply-add either.
/// </summary>
internal static class ScalarReference
{
    public static float Mul(float a, float b) => (float)((double)a * b);
    public static float Add(float a, float b) => (float)((double)a + b);
    public static float Div(float a, float b) => (float)((double)a / b);

    public static uint Key(float value) => (uint)BitConverter.SingleToInt32Bits(value) & 0x7FFFFFFFu;

    public static float[] WeightedSum(float[] stacked, float[] weights, int length)
    {
        var output = new float[length];
        for (int i = 0; i < length; i++)
        {
            float sum = 0f;
            for (int k = 0; k < weights.Length; k++)
                sum = Add(sum, Mul(weights[k], stacked[k * length + i]));
            output[i] = sum;
        }

        return output;
    }

    public static float[] Axpby(float a, float[] x, float b, float[] y)
    {
        var output = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
            output[i] = Add(Mul(a, x[i]), Mul(b, y[i]));
        return output;
    }

    /// <summary>Indices in a stable descending order of magnitude key (ties: lower index first).</summary>
    public static int[] DescendingOrder(float[] values)
    {
        int[] order = Enumerable.Range(0, values.Length).ToArray();
        Array.Sort(order, (x, y) =>
        {
            int byKey = Key(values[y]).CompareTo(Key(values[x]));
            return byKey != 0 ? byKey : x.CompareTo(y);
        });
        return order;
    }

    /// <summary>Indices in a stable ascending order of magnitude key (ties: lower index first).</summary>
    public static int[] AscendingOrder(float[] values)
    {
        int[] order = Enumerable.Range(0, values.Length).ToArray();
        Array.Sort(order, (x, y) =>
        {
            int byKey = Key(values[x]).CompareTo(Key(values[y]));
            return byKey != 0 ? byKey : x.CompareTo(y);
        });
        return order;
    }

    /// <summary>Top-k by a stable descending sort: keep the first k, zero (+0) the rest.</summary>
    public static (float[] Output, TopKSelection Selection) TopK(float[] values, int[] descending, long k)
    {
        var output = new float[values.Length];
        long kept = Math.Min(k, values.Length);
        for (int j = 0; j < kept; j++)
            output[descending[j]] = values[descending[j]];
        if (kept == 0)
            return (output, new TopKSelection(float.PositiveInfinity, 0, 0));

        uint threshold = Key(values[descending[kept - 1]]);
        long above = 0, atThreshold = 0;
        for (int j = 0; j < kept; j++)
        {
            uint key = Key(values[descending[j]]);
            if (key > threshold)
                above++;
            else
                atThreshold++;
        }

        return (output, new TopKSelection(BitConverter.Int32BitsToSingle((int)threshold), above, atThreshold));
    }

    /// <summary>Band by a stable ascending sort: zero the first dropBottom and the last dropTop.</summary>
    public static float[] Band(float[] values, int[] ascending, long dropBottom, long dropTop)
    {
        var output = (float[])values.Clone();
        for (long j = 0; j < values.Length; j++)
        {
            if (j < dropBottom || j >= values.Length - dropTop)
                output[ascending[j]] = 0f;
        }

        return output;
    }

    /// <summary>Philox4x32-10 written straight from the paper: key schedule first, then ten S-box rounds.</summary>
    public static uint[] Philox(uint[] counter, uint[] key)
    {
        var schedule = new uint[10, 2];
        for (int r = 0; r < 10; r++)
        {
            schedule[r, 0] = unchecked(key[0] + (uint)r * 0x9E3779B9u);
            schedule[r, 1] = unchecked(key[1] + (uint)r * 0xBB67AE85u);
        }

        uint[] x = (uint[])counter.Clone();
        for (int r = 0; r < 10; r++)
        {
            ulong p0 = Math.BigMul(0xD2511F53u, x[0]);
            ulong p1 = Math.BigMul(0xCD9E8D57u, x[2]);
            x = [(uint)(p1 >> 32) ^ x[1] ^ schedule[r, 0], (uint)p1, (uint)(p0 >> 32) ^ x[3] ^ schedule[r, 1], (uint)p0];
        }

        return x;
    }

    /// <summary>The random word of element i of Weld's stream for <paramref name="key"/>.</summary>
    public static uint StreamWord(PhiloxKey key, long element)
    {
        ulong block = (ulong)element / 4;
        uint[] words = Philox(
            [(uint)block, (uint)(block >> 32), key.TensorHash, key.ModelIndex],
            [(uint)key.Seed, (uint)(key.Seed >> 32)]);
        return words[element % 4];
    }

    public static float[] DropAndRescale(float[] values, float density, bool rescale, PhiloxKey key) =>
        DropAndRescale(values, density, rescale, key, 0);

    /// <summary>DARE's drop of a span whose values[0] is tensor element <paramref name="firstIndex"/>.</summary>
    public static float[] DropAndRescale(float[] values, float density, bool rescale, PhiloxKey key, long firstIndex)
    {
        var output = (float[])values.Clone();
        if (density >= 1f)
            return output;
        for (int i = 0; i < values.Length; i++)
        {
            double uniform = (StreamWord(key, firstIndex + i) >> 8) / 16777216.0;
            output[i] = uniform < density ? (rescale ? Div(values[i], density) : values[i]) : 0f;
        }

        return output;
    }

    /// <summary>
    /// TIES finished onto a base, from the definitions of the three steps it fuses: m = <see cref="SignConsensus"/>, then
    /// m·λ (rounded) when λ ≠ 1, then 1·base + 1·m (both products rounded, then the sum: Axpby's definition).
    /// </summary>
    public static float[] SignConsensusOntoBase(float[] stacked, float[] weights, SignElection election, bool normalize,
        float lambda, float[] baseline, int length)
    {
        float[] merged = SignConsensus(stacked, weights, election, normalize, length);
        var output = new float[length];
        float one = Unit();
        for (int i = 0; i < length; i++)
        {
            float m = lambda != 1f ? merged[i] * lambda : merged[i];
            output[i] = one * baseline[i] + one * m;
        }
        return output;
    }

    /// <summary>Row k of <paramref name="stacked"/> times s_k, each product rounded: a Scale pass over every row.</summary>
    public static float[] PreScaled(float[] stacked, float[] scales, int length)
    {
        var output = new float[stacked.Length];
        for (int k = 0; k < scales.Length; k++)
            for (int i = 0; i < length; i++)
                output[k * length + i] = Mul(stacked[k * length + i], scales[k]);
        return output;
    }

    /// <summary>
    /// The linear family's combine onto a base, from the definitions of the calls it fuses: acc = <see cref="WeightedSum"/>,
    /// then acc / divisor when divisor ≠ 1, acc·λ when λ ≠ 1, then 1·base + 1·acc (Axpby's definition).
    /// </summary>
    public static float[] WeightedSumOntoBase(float[] stacked, float[] weights, float divisor, float lambda, float[] baseline, int length)
    {
        float[] sum = WeightedSum(stacked, weights, length);
        var output = new float[length];
        float one = Unit();
        for (int i = 0; i < length; i++)
        {
            float acc = sum[i];
            if (divisor != 1f) acc = Div(acc, divisor);
            if (lambda != 1f) acc = Mul(acc, lambda);
            output[i] = Add(Mul(one, baseline[i]), Mul(one, acc));
        }
        return output;
    }

    /// <summary>1, from a call the JIT does not fold, so the reference really multiplies by it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static float Unit() => 1f;

    public static float[] SignConsensus(float[] stacked, float[] weights, SignElection election, bool normalize, int length)
    {
        var output = new float[length];
        var d = new float[weights.Length];
        for (int i = 0; i < length; i++)
        {
            for (int k = 0; k < weights.Length; k++)
                d[k] = Mul(weights[k], stacked[k * length + i]);

            int elected;
            if (election == SignElection.Sum)
            {
                float s = 0f;
                foreach (float dk in d)
                    s = Add(s, dk);
                elected = s >= 0f ? 1 : -1; // NaN sum: the comparison is false, −1 is elected
            }
            else
            {
                int c = 0;
                foreach (float dk in d)
                    c += Sign(dk);
                elected = c >= 0 ? 1 : -1;
            }

            float merged = 0f, divisor = 0f;
            for (int k = 0; k < weights.Length; k++)
            {
                if (Sign(d[k]) != elected)
                    continue;
                merged = Add(merged, d[k]);
                divisor = Add(divisor, weights[k]);
            }

            output[i] = normalize ? Div(merged, divisor == 0f ? 1f : divisor) : merged;
        }

        return output;
    }

    /// <summary>sign(x) with sign(±0) = sign(NaN) = 0.</summary>
    public static int Sign(float value) => value > 0f ? 1 : value < 0f ? -1 : 0;
}
