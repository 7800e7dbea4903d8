using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Weld.Kernels.Gpu;

namespace Weld.Kernels.Cpu;

/// <summary>
/// fdlibm's float64 exp and log (<see cref="Float64Math"/>, the functions the CUDA kernel runs) four lanes at a time,
/// bit for bit: the same IEEE operations in the same order on every lane (no fused multiply-add: .NET never contracts
/// vector arithmetic), each branch of the scalar code computed for every lane and the lane's own branch selected. Lanes
/// the fast path does not cover (NaN, ±∞, zero, negatives and subnormals for log; overflow, underflow and subnormal
/// results for exp) send the whole vector through the scalar functions, so every lane is always the scalar's bits.
/// A vector whose lanes all take the same plain branch — exp's k = 0 (|x| ≤ ln 2 / 2: every softmax argument of a row of
/// small weights), log's k = 0 outside the two bands and away from 1 (ratios of similar probabilities) — computes that
/// branch alone: the same operations the selected lanes would get, so the same bits, for half the work.
/// Vector256 here; the Vector512 twins (eight lanes, the same operations) are in <c>Float64MathVector.Wide.cs</c>.
/// </summary>
internal static partial class Float64MathVector
{
    private const double Ln2 = 6.93147180559945286227e-01;
    private const double Ln2High = 6.93147180369123816490e-01;
    private const double Ln2Low = 1.90821492927058770002e-10;
    private const double InverseLn2 = 1.44269504088896338700e+00;
    private const double ExpOverflow = 7.09782712893383973096e+02;
    private const double ExpUnderflow = -7.45133219101941108420e+02;

    /// <summary>e^x on each lane, equal to <see cref="Float64Math.ExpFdlibm"/> lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Exp(Vector256<double> x)
    {
        Vector256<double> absolute = Vector256.Abs(x);
        if (Vector256.LessThanOrEqualAll(absolute, Vector256.Create(0.5 * Ln2)))
        {
            // k = 0 on every lane (NaN fails the test): r = x − 0 = x, no scaling.
            Vector256<double> plainQuotient = ExpQuotient(x, out _);
            return Vector256.ConditionalSelect(Vector256.LessThan(absolute, Vector256.Create(3.7252902984e-09)),
                Vector256.Create(1.0) + x, Vector256.Create(1.0) - (-plainQuotient - x));
        }
        return ExpAnyBranch(x, absolute);
    }

    /// <summary><see cref="Exp(Vector256{double})"/> with every branch computed and selected per lane (kept out of line: rare).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<double> ExpAnyBranch(Vector256<double> x, Vector256<double> absolute)
    {
        // NaN fails both comparisons, so it takes the scalar path too.
        if (!Vector256.LessThanOrEqualAll(x, Vector256.Create(ExpOverflow)) || !Vector256.GreaterThanOrEqualAll(x, Vector256.Create(ExpUnderflow)))
            return ExpScalar(x);
        Vector256<double> negative = Vector256.LessThan(x, Vector256<double>.Zero);
        Vector256<double> reduced = Vector256.GreaterThan(absolute, Vector256.Create(0.5 * Ln2));
        // fdlibm: k = ±1 up to 1.5·ln 2, else ln2⁻¹·x ± 0.5 truncated (round to nearest); k = 0 below 0.5·ln 2.
        Vector256<double> kRounded = Vector256.Truncate(
            Vector256.Create(InverseLn2) * x + Vector256.ConditionalSelect(negative, Vector256.Create(-0.5), Vector256.Create(0.5)));
        Vector256<double> kOne = Vector256.ConditionalSelect(negative, Vector256.Create(-1.0), Vector256.Create(1.0));
        Vector256<double> k = Vector256.ConditionalSelect(reduced,
            Vector256.ConditionalSelect(Vector256.LessThan(absolute, Vector256.Create(1.5 * Ln2)), kOne, kRounded), Vector256<double>.Zero);
        if (!Vector256.GreaterThanOrEqualAll(k, Vector256.Create(-1021.0)))
            return ExpScalar(x); // a subnormal result: the scalar scales it in two steps
        Vector256<double> high = Vector256.ConditionalSelect(reduced, x - k * Vector256.Create(Ln2High), x);
        Vector256<double> low = Vector256.ConditionalSelect(reduced, k * Vector256.Create(Ln2Low), Vector256<double>.Zero);
        Vector256<double> r = high - low;
        Vector256<double> quotient = ExpQuotient(r, out _);
        Vector256<double> one = Vector256.Create(1.0);
        Vector256<double> unscaled = one - (-quotient - r);
        Vector256<double> y = one - ((low - quotient) - high);
        Vector256<double> scaled = (y.AsInt64() + Vector256.ShiftLeft(Vector256.ConvertToInt64(k), 52)).AsDouble();
        Vector256<double> result = Vector256.ConditionalSelect(Vector256.Equals(k, Vector256<double>.Zero), unscaled, scaled);
        // Below 2^-28, e^x rounds to 1 + x.
        return Vector256.ConditionalSelect(Vector256.LessThan(absolute, Vector256.Create(3.7252902984e-09)), one + x, result);
    }

    /// <summary>
    /// r·c / (2 − c) with c = r − r²·P(r²), fdlibm's rational step. One division serves both of its branches:
    /// c − 2 = −(2 − c) exactly, so r·c / (c − 2) = −(r·c / (2 − c)) exactly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> ExpQuotient(Vector256<double> r, out Vector256<double> c)
    {
        Vector256<double> t = r * r;
        Vector256<double> polynomial = t * (Vector256.Create(1.66666666666666019037e-01) + t * (Vector256.Create(-2.77777777770155933842e-03)
            + t * (Vector256.Create(6.61375632143793436117e-05) + t * (Vector256.Create(-1.65339022054652515390e-06)
            + t * Vector256.Create(4.13813679705723846039e-08)))));
        c = r - polynomial;
        return (r * c) / (Vector256.Create(2.0) - c);
    }

    /// <summary>ln x on each lane, equal to <see cref="Float64Math.LogFdlibm"/> lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<double> Log(Vector256<double> x)
    {
        // The smallest normal double: NaN, zero, negatives, subnormals and +∞ take the scalar path.
        if (!Vector256.GreaterThanOrEqualAll(x, Vector256.Create(2.2250738585072014E-308)) || !Vector256.LessThanAll(x, Vector256.Create(double.PositiveInfinity)))
            return LogScalar(x);
        Vector256<long> bits = x.AsInt64();
        Vector256<long> highWord = Vector256.ShiftRightLogical(bits, 32);
        Vector256<long> k = Vector256.ShiftRightArithmetic(highWord, 20) - Vector256.Create(1023L);
        highWord &= Vector256.Create(0x000FFFFFL);
        // i is 0x100000 when the mantissa is at least √2 (then halve it: 1 + f in [√2/2, √2)).
        Vector256<long> i = (highWord + Vector256.Create(0x95F64L)) & Vector256.Create(0x100000L);
        Vector256<double> normalized = (Vector256.ShiftLeft(highWord | (i ^ Vector256.Create(0x3FF00000L)), 32)
            | (bits & Vector256.Create(0xFFFFFFFFL))).AsDouble();
        k += Vector256.ShiftRightArithmetic(i, 20);
        Vector256<double> one = Vector256.Create(1.0);
        Vector256<double> f = normalized - one;
        Vector256<long> bands = (highWord - Vector256.Create(0x6147AL)) | (Vector256.Create(0x6B851L) - highWord);
        Vector256<long> nearOne = Vector256.LessThan((Vector256.Create(2L) + highWord) & Vector256.Create(0x000FFFFFL), Vector256.Create(3L));
        if (Vector256.EqualsAll(k, Vector256<long>.Zero) && Vector256.LessThanOrEqualAll(bands, Vector256<long>.Zero) && nearOne == Vector256<long>.Zero)
        {
            // Every lane takes the k = 0, unbanded branch: f − s·(f − R).
            Vector256<double> plainS = LogQuotient(f, out Vector256<double> plainR);
            return f - plainS * (f - plainR);
        }
        return LogAnyBranch(highWord, k, f);
    }

    /// <summary><see cref="Log(Vector256{double})"/>'s general case: every branch computed and selected per lane (kept out of line).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<double> LogAnyBranch(Vector256<long> highWord, Vector256<long> k, Vector256<double> f)
    {
        Vector256<double> dk = Vector256.ConvertToDouble(k);
        Vector256<double> kIsZero = Vector256.Equals(dk, Vector256<double>.Zero);
        Vector256<double> kLn2High = dk * Vector256.Create(Ln2High), kLn2Low = dk * Vector256.Create(Ln2Low);

        // |f| < 2^-20
        Vector256<double> r0 = (f * f) * (Vector256.Create(0.5) - Vector256.Create(0.33333333333333333) * f);
        Vector256<double> tinyResult = Vector256.ConditionalSelect(Vector256.Equals(f, Vector256<double>.Zero),
            Vector256.ConditionalSelect(kIsZero, Vector256<double>.Zero, kLn2High + kLn2Low),
            Vector256.ConditionalSelect(kIsZero, f - r0, kLn2High - ((r0 - kLn2Low) - f)));

        Vector256<double> s = LogQuotient(f, out Vector256<double> r);
        Vector256<double> halfSquare = (Vector256.Create(0.5) * f) * f;
        Vector256<double> banded = Vector256.ConditionalSelect(kIsZero, f - (halfSquare - s * (halfSquare + r)),
            kLn2High - ((halfSquare - (s * (halfSquare + r) + kLn2Low)) - f));
        Vector256<double> unbanded = Vector256.ConditionalSelect(kIsZero, f - s * (f - r), kLn2High - ((s * (f - r) - kLn2Low) - f));
        Vector256<long> bands = (highWord - Vector256.Create(0x6147AL)) | (Vector256.Create(0x6B851L) - highWord);
        Vector256<double> general = Vector256.ConditionalSelect(Vector256.GreaterThan(bands, Vector256<long>.Zero).AsDouble(), banded, unbanded);
        Vector256<long> nearOne = Vector256.LessThan((Vector256.Create(2L) + highWord) & Vector256.Create(0x000FFFFFL), Vector256.Create(3L));
        return Vector256.ConditionalSelect(nearOne.AsDouble(), tinyResult, general);
    }

    /// <summary>s = f / (2 + f) and fdlibm's R = t2 + t1, the polynomial in s² of log's every non-tiny branch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> LogQuotient(Vector256<double> f, out Vector256<double> r)
    {
        Vector256<double> s = f / (Vector256.Create(2.0) + f);
        Vector256<double> z = s * s;
        Vector256<double> w = z * z;
        Vector256<double> t1 = w * (Vector256.Create(3.999999999940941908e-01) + w * (Vector256.Create(2.222219843214978396e-01)
            + w * Vector256.Create(1.531383769920937332e-01)));
        Vector256<double> t2 = z * (Vector256.Create(6.666666666666735130e-01) + w * (Vector256.Create(2.857142874366239149e-01)
            + w * (Vector256.Create(1.818357216161805012e-01) + w * Vector256.Create(1.479819860511658591e-01))));
        r = t2 + t1;
        return s;
    }

    private static Vector256<double> ExpScalar(Vector256<double> x) => Vector256.Create(
        Float64Math.ExpFdlibm(x[0]), Float64Math.ExpFdlibm(x[1]), Float64Math.ExpFdlibm(x[2]), Float64Math.ExpFdlibm(x[3]));

    private static Vector256<double> LogScalar(Vector256<double> x) => Vector256.Create(
        Float64Math.LogFdlibm(x[0]), Float64Math.LogFdlibm(x[1]), Float64Math.LogFdlibm(x[2]), Float64Math.LogFdlibm(x[3]));
}
