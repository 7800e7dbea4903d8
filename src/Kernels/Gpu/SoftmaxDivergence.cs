using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

/// <remarks>Arcee Fusion's importance scores (<see cref="SoftmaxDivergence"/>): upload, one launch, download.</remarks>
public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, long, long, ArrayView<float>>? _softmaxDivergenceScores;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, long, long, ArrayView<float>>? _softmaxDivergences;

    /// <inheritdoc />
    /// <remarks>
    /// The kernel calls <see cref="Float64Math"/> (fdlibm's exp and log, under one ulp, every step rounded on its own) on
    /// every accelerator, as the CPU backend does (four lanes at a time), so the scores equal the CPU's bit for bit on
    /// CUDA and on ILGPU's CPU accelerator alike. ILGPU itself would compile Math.Exp / Math.Log to ILGPU.Algorithms'
    /// CORDIC iterations (no libdevice in the context), of unknown float64 accuracy, and not at all without the
    /// Algorithms extension. The C library's exp and log are not fdlibm's: measured against .NET on Linux, fdlibm's exp
    /// gives the same float64 in about 90% of softmax arguments and log in about 99% of probability ratios, one ulp apart
    /// otherwise; the probabilities and D are rounded to float32, which hides nearly all of that (the tests hold the
    /// scores within 4 float32 ulps of a reference on .NET's exp and log). Every other operation is rounded as on the
    /// CPU. One thread per row, each sum in row order.
    /// </remarks>
    public void SoftmaxDivergenceScores(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, int rowLength, Span<float> scores)
    {
        int length = scores.Length;
        RequireMethodLength(length, model.Length, nameof(model));
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        if (length == 0)
            return;
        if (rowLength < 1 || length % rowLength != 0)
            throw new ArgumentException($"{length} values do not split into rows of {rowLength}.", nameof(rowLength));
        long rows = length / rowLength;
        using var call = new Call(this);
        ArrayView<float> modelView = call.Upload(model);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchSoftmaxDivergenceScores(modelView, baseView, rowLength, rows, result);
        call.Download(result, scores);
    }

    /// <inheritdoc />
    /// <remarks>The D of <see cref="SoftmaxDivergenceScores"/>, by the same code: the same bits as the CPU's.</remarks>
    public void SoftmaxDivergences(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<float> divergences)
    {
        int length = model.Length;
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        int rowLength = Cpu.CpuKernels.InterpolationRowLength(length, divergences.Length);
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> modelView = call.Upload(model);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> result = call.Rent<float>(divergences.Length);
        var kernel = Load(ref _softmaxDivergences, SoftmaxDivergence.DivergenceRows);
        kernel(Stream, GridFor(divergences.Length), modelView, baseView, rowLength, divergences.Length, result);
        call.Download(result, divergences);
    }

    /// <summary>Launches on device arrays (inside a Call; also for the bench).</summary>
    internal void LaunchSoftmaxDivergenceScores(ArrayView<float> model, ArrayView<float> baseline, long rowLength, long rows,
        ArrayView<float> scores)
    {
        var kernel = Load(ref _softmaxDivergenceScores, SoftmaxDivergence.ScoreRows);
        kernel(Stream, GridFor(rows), model, baseline, rowLength, rows, scores);
    }
}

/// <summary>
/// Arcee Fusion's importance, one thread per row: the CPU's <c>Cpu/SoftmaxDivergence.cs</c> step by step, every sum in
/// row order. The CPU keeps the floored probabilities in scratch; here each is recomputed from the same inputs by the
/// same operations where it is needed, which gives the same float32 value. The float64 exp and log come from a type
/// argument, so the CUDA kernel's code never refers to <see cref="Math.Exp"/> (which ILGPU compiles for PTX only with
/// its Algorithms extension, as CORDIC iterations).
/// </summary>
internal static class SoftmaxDivergence
{
    private const float ProbabilityFloor = 1e-8f;

    /// <summary>The scores with fdlibm's exp and log (<see cref="Float64Math"/>): the kernel CUDA runs.</summary>
    public static void ScoreRows(ArrayView<float> model, ArrayView<float> baseline, long rowLength, long rows, ArrayView<float> scores) =>
        ScoreRowsWith<FdlibmFloat64Math>(model, baseline, rowLength, rows, scores);

    /// <summary>divergences[r] = (float)KL(softmax(model row r) + 1e-8 ‖ softmax(baseline row r) + 1e-8), fdlibm's exp and log.</summary>
    public static void DivergenceRows(ArrayView<float> model, ArrayView<float> baseline, long rowLength, long rows, ArrayView<float> divergences)
    {
        FdlibmFloat64Math math = default;
        long stride = (long)Grid.DimX * Group.DimX;
        for (long row = (long)Grid.IdxX * Group.DimX + Group.IdxX; row < rows; row += stride)
            divergences[row] = RowDivergence(math, model, baseline, row * rowLength, rowLength);
    }

    /// <summary>scores[j] = |model[j] − baseline[j]| · (float)KL(softmax(model) + 1e-8 ‖ softmax(baseline) + 1e-8), row by row.</summary>
    private static void ScoreRowsWith<TMath>(ArrayView<float> model, ArrayView<float> baseline, long rowLength, long rows,
        ArrayView<float> scores) where TMath : struct, IFloat64Math
    {
        TMath math = default;
        long stride = (long)Grid.DimX * Group.DimX;
        for (long row = (long)Grid.IdxX * Group.DimX + Group.IdxX; row < rows; row += stride)
        {
            long start = row * rowLength;
            float d = RowDivergence(math, model, baseline, start, rowLength);
            for (long j = 0; j < rowLength; j++)
                scores[start + j] = Mul(Math.Abs(Sub(model[start + j], baseline[start + j])), d);
        }
    }

    /// <summary>The row's D: both maxima, both sums of exponentials, the KL sum, each in row order.</summary>
    private static float RowDivergence<TMath>(TMath math, ArrayView<float> model, ArrayView<float> baseline, long start, long rowLength)
        where TMath : struct, IFloat64Math
    {
        float maxP = float.NegativeInfinity, maxQ = float.NegativeInfinity;
        for (long j = 0; j < rowLength; j++)
        {
            maxP = MaxKeepNaN(maxP, model[start + j]);
            maxQ = MaxKeepNaN(maxQ, baseline[start + j]);
        }
        double sumP = 0, sumQ = 0;
        for (long j = 0; j < rowLength; j++)
        {
            sumP = Add(sumP, math.Exp(RoundedFloat64.Sub(model[start + j], maxP)));
            sumQ = Add(sumQ, math.Exp(RoundedFloat64.Sub(baseline[start + j], maxQ)));
        }
        double divergence = 0;
        for (long j = 0; j < rowLength; j++)
        {
            float p = FlooredProbability(math, model[start + j], maxP, sumP);
            float q = FlooredProbability(math, baseline[start + j], maxQ, sumQ);
            divergence = Add(divergence, Mul(p, math.Log(RoundedFloat64.Div(p, q))));
        }
        return (float)divergence;
    }

    /// <summary>softmax(x)[j] + 1e-8: the float64 quotient rounded to float32, then the float32 floor added.</summary>
    private static float FlooredProbability<TMath>(TMath math, float x, float max, double sum) where TMath : struct, IFloat64Math =>
        Add((float)RoundedFloat64.Div(math.Exp(RoundedFloat64.Sub(x, max)), sum), ProbabilityFloor);

    /// <summary>
    /// <see cref="MathF.Max(float, float)"/> as .NET defines it: a NaN on either side is returned (the first one when
    /// both are), and +0 is above −0.
    /// </summary>
    private static float MaxKeepNaN(float a, float b)
    {
        if (a != b)
        {
            if (!float.IsNaN(a))
                return b < a ? a : b;
            return a;
        }
        return (Bits(b) >> 31) != 0 ? a : b;
    }
}

/// <summary>Float64 exp and log, chosen by a kernel's type argument.</summary>
internal interface IFloat64Math
{
    /// <summary>e^x.</summary>
    double Exp(double x);

    /// <summary>ln x.</summary>
    double Log(double x);
}

/// <summary>fdlibm's exp and log (<see cref="Float64Math"/>): the same bits on every device.</summary>
internal readonly struct FdlibmFloat64Math : IFloat64Math
{
    /// <inheritdoc />
    public double Exp(double x) => Float64Math.ExpFdlibm(x);

    /// <inheritdoc />
    public double Log(double x) => Float64Math.LogFdlibm(x);
}

/// <summary>
/// Float64 exp and log for CUDA kernels: the classic fdlibm algorithms (Sun's e_exp.c / e_log.c: argument reduction by
/// ln 2, a minimax polynomial; under one ulp), written with every float64 operation rounded on its own so ptxas cannot
/// contract them and every device, the CPU accelerator included, gives the same bits.
/// </summary>
internal static class Float64Math
{
    private const double Ln2High = 6.93147180369123816490e-01; // 0x3FE62E42FEE00000: k·Ln2High is exact for |k| < 2^11
    private const double Ln2Low = 1.90821492927058770002e-10; // 0x3DEA39EF35793C76
    private const double InverseLn2 = 1.44269504088896338700e+00;
    private const double ExpOverflow = 7.09782712893383973096e+02; // above: +∞
    private const double ExpUnderflow = -7.45133219101941108420e+02; // below: +0
    private const double TwoPow54 = 1.80143985094819840000e+16;

    /// <summary>
    /// fdlibm's exp: x = k·ln 2 + r with |r| ≤ ln 2 / 2, e^r from a degree-5 minimax polynomial in r² (Remez), scaled
    /// by 2^k through the exponent bits. NaN gives NaN, +∞ gives +∞, −∞ gives +0.
    /// </summary>
    public static double ExpFdlibm(double x)
    {
        if (double.IsNaN(x))
            return x;
        if (x > ExpOverflow)
            return double.PositiveInfinity;
        if (x < ExpUnderflow)
            return 0.0;
        double absolute = Math.Abs(x);
        int k;
        double high, low;
        if (absolute > 0.5 * 6.93147180559945286227e-01)
        {
            k = absolute < 1.5 * 6.93147180559945286227e-01
                ? (x < 0 ? -1 : 1)
                : (int)Add(Mul(InverseLn2, x), x < 0 ? -0.5 : 0.5); // truncation after ± 0.5: round to nearest
            high = RoundedFloat64.Sub(x, Mul(k, Ln2High));
            low = Mul(k, Ln2Low);
        }
        else if (absolute < 3.7252902984e-09) // 2^-28: e^x rounds to 1 + x
        {
            return Add(1.0, x);
        }
        else
        {
            k = 0;
            high = x;
            low = 0;
        }
        double r = RoundedFloat64.Sub(high, low);
        double t = Mul(r, r);
        double polynomial = Mul(t, Add(1.66666666666666019037e-01, Mul(t, Add(-2.77777777770155933842e-03,
            Mul(t, Add(6.61375632143793436117e-05, Mul(t, Add(-1.65339022054652515390e-06, Mul(t, 4.13813679705723846039e-08)))))))));
        double c = RoundedFloat64.Sub(r, polynomial);
        if (k == 0)
            return RoundedFloat64.Sub(1.0, RoundedFloat64.Sub(RoundedFloat64.Div(Mul(r, c), RoundedFloat64.Sub(c, 2.0)), r));
        double y = RoundedFloat64.Sub(1.0, RoundedFloat64.Sub(RoundedFloat64.Sub(low, RoundedFloat64.Div(Mul(r, c), RoundedFloat64.Sub(2.0, c))), high));
        if (k >= -1021)
            return Interop.IntAsFloat(Interop.FloatAsInt(y) + ((ulong)(long)k << 52));
        // Subnormal result: scale by 2^(k + 1000) first, then by 2^-1000 (one rounding, in the multiply).
        return Mul(Interop.IntAsFloat(Interop.FloatAsInt(y) + ((ulong)(long)(k + 1000) << 52)), 9.33263618503218878990e-302);
    }

    /// <summary>
    /// fdlibm's log: x = 2^k·(1 + f) with √2/2 ≤ 1 + f &lt; √2, ln(1 + f) = f − s·(f − R) with s = f / (2 + f) and R a
    /// degree-7 minimax polynomial in s² (Remez), plus k·ln 2 in two parts. ±0 gives −∞, a negative x NaN, +∞ gives +∞.
    /// </summary>
    public static double LogFdlibm(double x)
    {
        if (double.IsNaN(x) || x == double.PositiveInfinity)
            return x;
        if (x == 0)
            return double.NegativeInfinity;
        if (x < 0)
            return double.NaN;
        int k = 0;
        ulong bits = Interop.FloatAsInt(x);
        if (bits < 0x0010000000000000ul)
        {
            // Subnormal: scale into the normal range (exact).
            k -= 54;
            bits = Interop.FloatAsInt(Mul(x, TwoPow54));
        }
        int highWord = (int)(bits >> 32);
        k += (highWord >> 20) - 1023;
        highWord &= 0x000FFFFF;
        // i is 0x100000 when the mantissa is at least √2 (then halve it: 1 + f in [√2/2, √2)).
        int i = (highWord + 0x95F64) & 0x100000;
        double normalized = Interop.IntAsFloat(((ulong)(uint)(highWord | (i ^ 0x3FF00000)) << 32) | (bits & 0xFFFFFFFFul));
        k += i >> 20;
        double f = RoundedFloat64.Sub(normalized, 1.0);
        double dk = k;
        if ((0x000FFFFF & (2 + highWord)) < 3)
        {
            // |f| < 2^-20
            if (f == 0)
                return k == 0 ? 0.0 : Add(Mul(dk, Ln2High), Mul(dk, Ln2Low));
            double r0 = Mul(Mul(f, f), RoundedFloat64.Sub(0.5, Mul(0.33333333333333333, f)));
            return k == 0 ? RoundedFloat64.Sub(f, r0) : RoundedFloat64.Sub(Mul(dk, Ln2High), RoundedFloat64.Sub(RoundedFloat64.Sub(r0, Mul(dk, Ln2Low)), f));
        }
        double s = RoundedFloat64.Div(f, Add(2.0, f));
        double z = Mul(s, s);
        int lowBand = highWord - 0x6147A;
        double w = Mul(z, z);
        int highBand = 0x6B851 - highWord;
        double t1 = Mul(w, Add(3.999999999940941908e-01, Mul(w, Add(2.222219843214978396e-01, Mul(w, 1.531383769920937332e-01)))));
        double t2 = Mul(z, Add(6.666666666666735130e-01, Mul(w, Add(2.857142874366239149e-01,
            Mul(w, Add(1.818357216161805012e-01, Mul(w, 1.479819860511658591e-01)))))));
        double r = Add(t2, t1);
        if ((lowBand | highBand) > 0)
        {
            double halfSquare = Mul(Mul(0.5, f), f);
            return k == 0
                ? RoundedFloat64.Sub(f, RoundedFloat64.Sub(halfSquare, Mul(s, Add(halfSquare, r))))
                : RoundedFloat64.Sub(Mul(dk, Ln2High), RoundedFloat64.Sub(RoundedFloat64.Sub(halfSquare, Add(Mul(s, Add(halfSquare, r)), Mul(dk, Ln2Low))), f));
        }
        return k == 0
            ? RoundedFloat64.Sub(f, Mul(s, RoundedFloat64.Sub(f, r)))
            : RoundedFloat64.Sub(Mul(dk, Ln2High), RoundedFloat64.Sub(RoundedFloat64.Sub(Mul(s, RoundedFloat64.Sub(f, r)), Mul(dk, Ln2Low)), f));
    }
}
