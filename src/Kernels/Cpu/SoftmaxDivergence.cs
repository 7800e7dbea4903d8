using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Weld.Kernels.Gpu;

namespace Weld.Kernels.Cpu;

/// <summary>
/// One row of <see cref="IMergeKernels.SoftmaxDivergences"/>: the softmax of both rows and their KL divergence D; the
/// row's scores are |model − baseline| · D.
/// </summary>
/// <remarks>
/// The float64 exp and log are fdlibm's (<see cref="Float64Math"/>, the CUDA kernel's), several lanes at a time through
/// <see cref="Float64MathVector"/>, which gives the scalar functions' bits on every lane: so the CPU's scores equal every
/// GPU's bit for bit. The quotients stay divisions (a reciprocal would round differently), and every float64 sum is
/// taken in row order, one element after the other, inside the vector loop (its chain of dependent additions then runs
/// while the next vectors are computed); so a row's D depends on that row alone, never on how rows are split among
/// threads. log(p / q) is not replaced by a difference of log-softmaxes: p and q carry the 1e-8 floor and the float32
/// rounding, which that identity ignores. Two widths give the same bits: eight float64 lanes where AVX-512 runs them
/// (<see cref="DivergenceWide"/>), four elsewhere (<see cref="DivergenceNarrow"/>); only the lane count differs.
/// </remarks>
internal static class SoftmaxDivergence
{
    private const float ProbabilityFloor = 1e-8f;

    /// <summary>
    /// (float)KL(softmax(model) + 1e-8 ‖ softmax(baseline) + 1e-8) of one row; <paramref name="exponentials"/> is
    /// scratch, twice as long as the row.
    /// </summary>
    public static float Divergence(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<double> exponentials) =>
        Vector512.IsHardwareAccelerated ? DivergenceWide(model, baseline, exponentials) : DivergenceNarrow(model, baseline, exponentials);

    /// <summary>scores[j] = |model[j] − baseline[j]| · D, float32.</summary>
    public static void Scale(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, float divergence, Span<float> scores)
    {
        int n = model.Length;
        var dVector = Vector256.Create(divergence);
        int j = 0;
        for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
            (Vector256.Abs(Vector256.Create(model.Slice(j)) - Vector256.Create(baseline.Slice(j))) * dVector).CopyTo(scores.Slice(j));
        for (; j < n; j++)
            scores[j] = MathF.Abs(model[j] - baseline[j]) * divergence;
    }

    /// <summary><see cref="Divergence"/> four float64 lanes at a time (Vector256: AVX2, or any SIMD .NET has).</summary>
    internal static float DivergenceNarrow(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<double> exponentials)
    {
        const int Step = 8; // one Vector256<float>, two Vector256<double>
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
            p1.CopyTo(expP.Slice(j + Step / 2));
            q0.CopyTo(expQ.Slice(j));
            q1.CopyTo(expQ.Slice(j + Step / 2));
            sumP = AddInOrder(AddInOrder(sumP, p0), p1);
            sumQ = AddInOrder(AddInOrder(sumQ, q0), q1);
        }
        ExponentialsTail(model, baseline, maxP[0], maxQ[0], expP, expQ, j, ref sumP, ref sumQ);

        // p = (float)(e / Σ) + 1e-8 (float32, as torch's softmax gives), likewise q; D = Σ p·ln(p / q) in row order.
        var sumPVector = Vector256.Create(sumP);
        var sumQVector = Vector256.Create(sumQ);
        var floor = Vector256.Create(ProbabilityFloor);
        double divergence = 0;
        j = 0;
        for (; j <= n - Step; j += Step)
        {
            Vector256<float> p = Vector256.Narrow(Vector256.Create<double>(expP.Slice(j)) / sumPVector,
                Vector256.Create<double>(expP.Slice(j + Step / 2)) / sumPVector) + floor;
            Vector256<float> q = Vector256.Narrow(Vector256.Create<double>(expQ.Slice(j)) / sumQVector,
                Vector256.Create<double>(expQ.Slice(j + Step / 2)) / sumQVector) + floor;
            Vector256<double> p0 = Vector256.WidenLower(p), p1 = Vector256.WidenUpper(p);
            Vector256<double> term0 = p0 * Float64MathVector.Log(p0 / Vector256.WidenLower(q));
            Vector256<double> term1 = p1 * Float64MathVector.Log(p1 / Vector256.WidenUpper(q));
            divergence = AddInOrder(AddInOrder(divergence, term0), term1);
        }
        return (float)DivergenceTail(expP, expQ, sumP, sumQ, j, divergence);
    }

    /// <summary><see cref="Divergence"/> eight float64 lanes at a time (Vector512: AVX-512), the narrow loop's twin.</summary>
    internal static float DivergenceWide(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<double> exponentials)
    {
        const int Step = 16; // one Vector512<float>, two Vector512<double>
        int n = model.Length;
        Span<double> expP = exponentials[..n], expQ = exponentials.Slice(n, n);
        var maxP = Vector512.Create((double)Max(model));
        var maxQ = Vector512.Create((double)Max(baseline));

        double sumP = 0, sumQ = 0;
        int j = 0;
        for (; j <= n - Step; j += Step)
        {
            Vector512<float> x = Vector512.Create(model.Slice(j)), y = Vector512.Create(baseline.Slice(j));
            Vector512<double> p0 = Float64MathVector.Exp(Vector512.WidenLower(x) - maxP), p1 = Float64MathVector.Exp(Vector512.WidenUpper(x) - maxP);
            Vector512<double> q0 = Float64MathVector.Exp(Vector512.WidenLower(y) - maxQ), q1 = Float64MathVector.Exp(Vector512.WidenUpper(y) - maxQ);
            p0.CopyTo(expP.Slice(j));
            p1.CopyTo(expP.Slice(j + Step / 2));
            q0.CopyTo(expQ.Slice(j));
            q1.CopyTo(expQ.Slice(j + Step / 2));
            sumP = AddInOrder(AddInOrder(sumP, p0), p1);
            sumQ = AddInOrder(AddInOrder(sumQ, q0), q1);
        }
        ExponentialsTail(model, baseline, maxP[0], maxQ[0], expP, expQ, j, ref sumP, ref sumQ);

        var sumPVector = Vector512.Create(sumP);
        var sumQVector = Vector512.Create(sumQ);
        var floor = Vector512.Create(ProbabilityFloor);
        double divergence = 0;
        j = 0;
        for (; j <= n - Step; j += Step)
        {
            Vector512<float> p = Vector512.Narrow(Vector512.Create<double>(expP.Slice(j)) / sumPVector,
                Vector512.Create<double>(expP.Slice(j + Step / 2)) / sumPVector) + floor;
            Vector512<float> q = Vector512.Narrow(Vector512.Create<double>(expQ.Slice(j)) / sumQVector,
                Vector512.Create<double>(expQ.Slice(j + Step / 2)) / sumQVector) + floor;
            Vector512<double> p0 = Vector512.WidenLower(p), p1 = Vector512.WidenUpper(p);
            Vector512<double> term0 = p0 * Float64MathVector.Log(p0 / Vector512.WidenLower(q));
            Vector512<double> term1 = p1 * Float64MathVector.Log(p1 / Vector512.WidenUpper(q));
            divergence = AddInOrder(AddInOrder(divergence, term0), term1);
        }
        return (float)DivergenceTail(expP, expQ, sumP, sumQ, j, divergence);
    }

    /// <summary>The exponentials and sums past the last whole vector, one element at a time (the lanes' bits).</summary>
    private static void ExponentialsTail(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, double maxP, double maxQ,
        Span<double> expP, Span<double> expQ, int j, ref double sumP, ref double sumQ)
    {
        for (; j < model.Length; j++)
        {
            sumP += expP[j] = Float64Math.ExpFdlibm(model[j] - maxP);
            sumQ += expQ[j] = Float64Math.ExpFdlibm(baseline[j] - maxQ);
        }
    }

    /// <summary>The divergence's terms past the last whole vector, one element at a time.</summary>
    private static double DivergenceTail(ReadOnlySpan<double> expP, ReadOnlySpan<double> expQ, double sumP, double sumQ, int j, double divergence)
    {
        for (; j < expP.Length; j++)
        {
            float p = (float)(expP[j] / sumP) + ProbabilityFloor, q = (float)(expQ[j] / sumQ) + ProbabilityFloor;
            divergence += p * Float64Math.LogFdlibm((double)p / q);
        }
        return divergence;
    }

    /// <summary>sum + v[0] + v[1] + v[2] + v[3], left to right: the row-order sum, one rounding per element.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double AddInOrder(double sum, Vector256<double> v) => sum + v.GetElement(0) + v.GetElement(1) + v.GetElement(2) + v.GetElement(3);

    /// <summary>sum + v[0] + … + v[7], left to right.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double AddInOrder(double sum, Vector512<double> v) => AddInOrder(AddInOrder(sum, v.GetLower()), v.GetUpper());

    /// <summary>
    /// The row's maximum as <see cref="MathF.Max(float, float)"/> folds it: NaN if any value is NaN. Only x − max is used
    /// and e^(±0) = 1, so which zero a zero maximum carries never matters.
    /// </summary>
    private static float Max(ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        int j = 0;
        if (x.Length >= Vector256<float>.Count)
        {
            Vector256<float> maxima = Vector256.Create(float.NegativeInfinity), unordered = Vector256<float>.Zero;
            for (; j <= x.Length - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                Vector256<float> v = Vector256.Create(x.Slice(j));
                maxima = Vector256.MaxNative(maxima, v);
                unordered |= ~Vector256.Equals(v, v);
            }
            if (unordered != Vector256<float>.Zero)
                return float.NaN;
            for (int lane = 0; lane < Vector256<float>.Count; lane++)
                max = MathF.Max(max, maxima.GetElement(lane));
        }
        for (; j < x.Length; j++)
            max = MathF.Max(max, x[j]);
        return max;
    }
}
