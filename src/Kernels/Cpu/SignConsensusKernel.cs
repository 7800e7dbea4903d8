using System.Numerics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// TIES sign election and disjoint merge over one chunk, per element (d_k = w_k·δ_k, float32):
/// <list type="bullet">
/// <item>Sum election: s = ((0 + d_0) + d_1) + … ; elected = s ≥ 0 ? +1 : −1 (a NaN sum elects −1).</item>
/// <item>Count election: c = Σ sign(d_k) with sign(0) = sign(NaN) = 0; elected = c ≥ 0 ? +1 : −1.</item>
/// <item>agree_k = sign(d_k) == elected: zero and NaN never agree.</item>
/// <item>out = ((0 + agreeing d) + …) in k order; normalised: divided by the k-ordered float32 sum of the agreeing
/// w_k, a divisor of exactly 0 replaced by 1.</item>
/// </list>
/// </summary>
/// <remarks>
/// Onto a base, base + m gives Axpby(1, base, 1, m)'s bits: 1·x = x for every x except a signalling NaN, which
/// the multiply quiets and the addition would quiet just the same (x86 returns the first NaN operand, quieted).
/// The SIMD path adds +0 for a disagreeing model instead of skipping it. That is bit-identical: the running sum
/// starts at +0 and only gains non-zero, non-NaN values, so it is never −0 and x + (+0) == x.
/// </remarks>
internal static unsafe class SignConsensusKernel
{
    /// <summary>
    /// Merges elements [0, count) of a chunk whose rows are <paramref name="rowLength"/> apart; with a
    /// <paramref name="baseline"/>, finishes TIES there too: m·λ when λ ≠ 1 (as <c>Scale</c>), then 1·base + 1·m (as
    /// <c>Axpby(1, base, 1, m)</c>), each step rounded as those kernels round it. With <paramref name="preScales"/> (one per
    /// row), row k is read as x·s_k rounded: the bits of a <c>Scale(row, s_k)</c> pass before the merge, without the pass.
    /// </summary>
    public static void Merge(float* stacked, long rowLength, ReadOnlySpan<float> weights, SignElection election,
        bool normalize, float* output, int count, float lambda = 1f, float* baseline = null, float* preScales = null)
    {
        if (preScales == null)
            Merge(default(RowsAsStored), stacked, rowLength, weights, election, normalize, output, count, lambda, baseline);
        else
            Merge(new RowsPreScaled(preScales), stacked, rowLength, weights, election, normalize, output, count, lambda, baseline);
    }

    /// <summary>
    /// <see cref="Merge(float*, long, ReadOnlySpan{float}, SignElection, bool, float*, int, float, float*, float*)"/>
    /// reading δ_k through <paramref name="rowRead"/>: with pre-scales, δ_k = x·s_k rounded before d_k = w_k·δ_k.
    /// </summary>
    /// <remarks>
    /// When <typeparamref name="TRead"/> keeps its reads (<see cref="IStackedRowRead.KeepsReads"/>: a deferred selection's
    /// masked read), <paramref name="products"/> (one vector per row) holds the election's d_k for the merge step, so
    /// each row is read and masked once per vector; other reads reload the row from cache, as they always did.
    /// </remarks>
    internal static void Merge<TRead>(TRead rowRead, float* stacked, long rowLength, ReadOnlySpan<float> weights, SignElection election,
        bool normalize, float* output, int count, float lambda, float* baseline, Vector<float>* products = null)
        where TRead : struct, IStackedRowRead
    {
        int rows = weights.Length;
        int i = 0;
        bool scale = lambda != 1f;
        if (Vector.IsHardwareAccelerated)
        {
            Vector<float> zero = Vector<float>.Zero;
            Vector<float> one = Vector<float>.One;
            var lambdaVector = new Vector<float>(lambda);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<int> electedPositive;
                if (election == SignElection.Sum)
                {
                    Vector<float> sum = zero;
                    for (int k = 0; k < rows; k++)
                    {
                        Vector<float> d = new Vector<float>(weights[k]) * rowRead.Load(stacked + k * rowLength + i, k);
                        if (rowRead.KeepsReads) products[k] = d;
                        sum += d;
                    }
                    electedPositive = Vector.GreaterThanOrEqual(sum, zero);
                }
                else
                {
                    // Comparison masks are −1 where true: c − (d > 0) + (d < 0) counts +1 / −1 votes.
                    Vector<int> votes = Vector<int>.Zero;
                    for (int k = 0; k < rows; k++)
                    {
                        Vector<float> d = new Vector<float>(weights[k]) * rowRead.Load(stacked + k * rowLength + i, k);
                        if (rowRead.KeepsReads) products[k] = d;
                        votes = votes - Vector.GreaterThan(d, zero) + Vector.LessThan(d, zero);
                    }

                    electedPositive = Vector.GreaterThanOrEqual(votes, Vector<int>.Zero);
                }

                Vector<float> merged = zero;
                Vector<float> divisor = zero;
                for (int k = 0; k < rows; k++)
                {
                    var weight = new Vector<float>(weights[k]);
                    Vector<float> d = rowRead.KeepsReads ? products[k] : weight * rowRead.Load(stacked + k * rowLength + i, k);
                    Vector<float> agree = Vector.AsVectorSingle(
                        Vector.ConditionalSelect(electedPositive, Vector.GreaterThan(d, zero), Vector.LessThan(d, zero)));
                    merged += d & agree;
                    if (normalize)
                        divisor += weight & agree;
                }

                if (normalize)
                    merged /= Vector.ConditionalSelect(Vector.Equals(divisor, zero), one, divisor);
                if (baseline != null)
                {
                    if (scale) merged *= lambdaVector;
                    merged = Vector.Load(baseline + i) + merged; // Axpby's 1·base + 1·m: see the remark
                }
                Vector.Store(merged, output + i);
            }
        }

        for (; i < count; i++)
        {
            float merged = MergeElement(rowRead, stacked + i, rowLength, weights, election, normalize);
            if (baseline != null)
            {
                if (scale) merged *= lambda;
                merged = baseline[i] + merged;
            }
            output[i] = merged;
        }
    }

    private static float MergeElement<TRead>(TRead rowRead, float* column, long rowLength, ReadOnlySpan<float> weights, SignElection election, bool normalize)
        where TRead : struct, IStackedRowRead
    {
        int rows = weights.Length;
        bool electedPositive;
        if (election == SignElection.Sum)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum += weights[k] * rowRead.Read(column + k * rowLength, k);
            electedPositive = sum >= 0f;
        }
        else
        {
            int votes = 0;
            for (int k = 0; k < rows; k++)
                votes += Sign(weights[k] * rowRead.Read(column + k * rowLength, k));
            electedPositive = votes >= 0;
        }

        int elected = electedPositive ? 1 : -1;
        float merged = 0f;
        float divisor = 0f;
        for (int k = 0; k < rows; k++)
        {
            float d = weights[k] * rowRead.Read(column + k * rowLength, k);
            if (Sign(d) == elected)
            {
                merged += d;
                divisor += weights[k];
            }
        }

        if (!normalize)
            return merged;
        return merged / (divisor == 0f ? 1f : divisor);
    }

    private static int Sign(float value) => value > 0f ? 1 : value < 0f ? -1 : 0;
}
