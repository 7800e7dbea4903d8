using System.Runtime.Intrinsics;
using Weld.Kernels.Gpu;

namespace Weld.Kernels.Cpu;

/// <summary>One row of <see cref="IMergeKernels.SoftmaxDivergenceScores"/>: the softmax of both rows, their KL divergence, the scores.</summary>
/// <remarks>
/// The float64 exp and log are fdlibm's (<see cref="Float64Math"/>, the CUDA kernel's), four lanes at a time through
/// <see cref="Float64MathVector"/>, which gives the scalar functions' bits on every lane: so the CPU's scores equal every
/// GPU's bit for bit. The quotients stay divisions (a reciprocal would round differently), and every float64 sum is
/// taken in row order, one element after the other, inside the vector loop (its chain of dependent additions then runs
/// while the next vectors are computed); so a row's scores depend on that row alone, never on how rows are split among
/// threads. log(p / q) is not replaced by a difference of log-softmaxes: p and q carry the 1e-8 floor and the float32
/// rounding, which that identity ignores.
/// </remarks>
internal static class SoftmaxDivergence
{
    private const float ProbabilityFloor = 1e-8f;
    private const int Step = 8; // one Vector256<float>, two Vector256<double>

    /// <summary>
    /// scores[j] = |model[j] − baseline[j]| · (float)KL(softmax(model) + 1e-8 ‖ softmax(baseline) + 1e-8);
    /// <paramref name="exponentials"/> is scratch, twice as long as the row.
    /// </summary>
    public static void ScoreRow(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<float> scores, Span<double> exponentials)
    {
        int n = model.Length;
        Span<double> expP = exponentials[..n], expQ = exponentials.Slice(n, n);
        var maxP = Vector256.Create((double)Max(model));
        var maxQ = Vector256.Create((double)Max(baseline));

        // The exponentials e^(x − max) of both rows, kept for the division, and their sums in row order.
        double sumP = 0, sumQ = 0;
        int j = 0;
        for (; j <= n - Step; j += Step)
        {
            Vector256<float> x = Vector256.Create(model.Slice(j)), y = Vector256.Create(baseline.Slice(j));
            Vector256<double> p0 = Float64MathVector.Exp(Vector256.WidenLower(x) - maxP), p1 = Float64MathVector.Exp(Vector256.WidenUpper(x) - maxP);
            Vector256<double> q0 = Float64MathVector.Exp(Vector256.WidenLower(y) - maxQ), q1 = Float64MathVector.Exp(Vector256.WidenUpper(y) - maxQ);
            p0.CopyTo(expP.Slice(j));
            p1.CopyTo(expP.Slice(j + 4));
            q0.CopyTo(expQ.Slice(j));
            q1.CopyTo(expQ.Slice(j + 4));
            sumP = AddInOrder(AddInOrder(sumP, p0), p1);
            sumQ = AddInOrder(AddInOrder(sumQ, q0), q1);
        }
        for (; j < n; j++)
        {
            sumP += expP[j] = Float64Math.ExpFdlibm(model[j] - maxP[0]);
            sumQ += expQ[j] = Float64Math.ExpFdlibm(baseline[j] - maxQ[0]);
        }

        // p = (float)(e / Σ) + 1e-8 (float32, as torch's softmax gives), likewise q; D = Σ p·ln(p / q) in row order.
        var sumPVector = Vector256.Create(sumP);
        var sumQVector = Vector256.Create(sumQ);
        var floor = Vector256.Create(ProbabilityFloor);
        double divergence = 0;
        j = 0;
        for (; j <= n - Step; j += Step)
        {
            Vector256<float> p = Vector256.Narrow(Vector256.Create<double>(expP.Slice(j)) / sumPVector,
                Vector256.Create<double>(expP.Slice(j + 4)) / sumPVector) + floor;
            Vector256<float> q = Vector256.Narrow(Vector256.Create<double>(expQ.Slice(j)) / sumQVector,
                Vector256.Create<double>(expQ.Slice(j + 4)) / sumQVector) + floor;
            Vector256<double> p0 = Vector256.WidenLower(p), p1 = Vector256.WidenUpper(p);
            Vector256<double> term0 = p0 * Float64MathVector.Log(p0 / Vector256.WidenLower(q));
            Vector256<double> term1 = p1 * Float64MathVector.Log(p1 / Vector256.WidenUpper(q));
            divergence = AddInOrder(AddInOrder(divergence, term0), term1);
        }
        for (; j < n; j++)
        {
            float p = (float)(expP[j] / sumP) + ProbabilityFloor, q = (float)(expQ[j] / sumQ) + ProbabilityFloor;
            divergence += p * Float64Math.LogFdlibm((double)p / q);
        }

        float d = (float)divergence;
        var dVector = Vector256.Create(d);
        j = 0;
        for (; j <= n - Step; j += Step)
            (Vector256.Abs(Vector256.Create(model.Slice(j)) - Vector256.Create(baseline.Slice(j))) * dVector).CopyTo(scores.Slice(j));
        for (; j < n; j++)
            scores[j] = MathF.Abs(model[j] - baseline[j]) * d;
    }

    /// <summary>sum + v[0] + v[1] + v[2] + v[3], left to right: the row-order sum, one rounding per element.</summary>
    private static double AddInOrder(double sum, Vector256<double> v) => sum + v.GetElement(0) + v.GetElement(1) + v.GetElement(2) + v.GetElement(3);

    /// <summary>
    /// The row's maximum as <see cref="MathF.Max(float, float)"/> folds it: NaN if any value is NaN. Only x − max is used
    /// and e^(±0) = 1, so which zero a zero maximum carries never matters.
    /// </summary>
    private static float Max(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        int j = 0;
        if (x.Length >= Step)
        {
            Vector256<float> maxima = Vector256.Create(float.NegativeInfinity), unordered = Vector256<float>.Zero;
            for (; j <= x.Length - Step; j += Step)
            {
                Vector256<float> v = Vector256.Create(x.Slice(j));
                maxima = Vector256.MaxNative(maxima, v);
                unordered |= ~Vector256.Equals(v, v);
            }
            if (unordered != Vector256<float>.Zero)
                return float.NaN;
            for (int lane = 0; lane < Step; lane++)
                max = MathF.Max(max, maxima.GetElement(lane));
        }
        for (; j < x.Length; j++)
            max = MathF.Max(max, x[j]);
        return max;
    }
}
