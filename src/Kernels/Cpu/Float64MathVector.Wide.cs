using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Weld.Kernels.Gpu;

namespace Weld.Kernels.Cpu;

/// <remarks>
/// The eight-lane twins of the Vector256 functions (<c>Float64MathVector.cs</c>): the same operations in the same order,
/// line for line, so each lane is again the scalar fdlibm function's bits. Used where
/// <see cref="Vector512.IsHardwareAccelerated"/> (AVX-512: half the instructions per element); elsewhere .NET runs them
/// in software, correct but slow, which is how the tests check them on any machine.
/// </remarks>
internal static partial class Float64MathVector
{
    /// <summary>e^x on each lane, equal to <see cref="Float64Math.ExpFdlibm"/> lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Exp(Vector512<double> x)
    {
        Vector512<double> absolute = Vector512.Abs(x);
        if (Vector512.LessThanOrEqualAll(absolute, Vector512.Create(0.5 * Ln2)))
        {
            // k = 0 on every lane (NaN fails the test): r = x − 0 = x, no scaling.
            Vector512<double> plainQuotient = ExpQuotient(x, out _);
            return Vector512.ConditionalSelect(Vector512.LessThan(absolute, Vector512.Create(3.7252902984e-09)),
                Vector512.Create(1.0) + x, Vector512.Create(1.0) - (-plainQuotient - x));
        }
        return ExpAnyBranch(x, absolute);
    }

    /// <summary><see cref="Exp(Vector512{double})"/> with every branch computed and selected per lane (kept out of line: rare).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector512<double> ExpAnyBranch(Vector512<double> x, Vector512<double> absolute)
    {
        // NaN fails both comparisons, so it takes the scalar path too.
        if (!Vector512.LessThanOrEqualAll(x, Vector512.Create(ExpOverflow)) || !Vector512.GreaterThanOrEqualAll(x, Vector512.Create(ExpUnderflow)))
            return ExpScalar(x);
        Vector512<double> negative = Vector512.LessThan(x, Vector512<double>.Zero);
        Vector512<double> reduced = Vector512.GreaterThan(absolute, Vector512.Create(0.5 * Ln2));
        // fdlibm: k = ±1 up to 1.5·ln 2, else ln2⁻¹·x ± 0.5 truncated (round to nearest); k = 0 below 0.5·ln 2.
        Vector512<double> kRounded = Vector512.Truncate(
            Vector512.Create(InverseLn2) * x + Vector512.ConditionalSelect(negative, Vector512.Create(-0.5), Vector512.Create(0.5)));
        Vector512<double> kOne = Vector512.ConditionalSelect(negative, Vector512.Create(-1.0), Vector512.Create(1.0));
        Vector512<double> k = Vector512.ConditionalSelect(reduced,
            Vector512.ConditionalSelect(Vector512.LessThan(absolute, Vector512.Create(1.5 * Ln2)), kOne, kRounded), Vector512<double>.Zero);
        if (!Vector512.GreaterThanOrEqualAll(k, Vector512.Create(-1021.0)))
            return ExpScalar(x); // a subnormal result: the scalar scales it in two steps
        Vector512<double> high = Vector512.ConditionalSelect(reduced, x - k * Vector512.Create(Ln2High), x);
        Vector512<double> low = Vector512.ConditionalSelect(reduced, k * Vector512.Create(Ln2Low), Vector512<double>.Zero);
        Vector512<double> r = high - low;
        Vector512<double> quotient = ExpQuotient(r, out _);
        Vector512<double> one = Vector512.Create(1.0);
        Vector512<double> unscaled = one - (-quotient - r);
        Vector512<double> y = one - ((low - quotient) - high);
        Vector512<double> scaled = (y.AsInt64() + Vector512.ShiftLeft(Vector512.ConvertToInt64(k), 52)).AsDouble();
        Vector512<double> result = Vector512.ConditionalSelect(Vector512.Equals(k, Vector512<double>.Zero), unscaled, scaled);
        // Below 2^-28, e^x rounds to 1 + x.
        return Vector512.ConditionalSelect(Vector512.LessThan(absolute, Vector512.Create(3.7252902984e-09)), one + x, result);
    }

    /// <summary>
    /// r·c / (2 − c) with c = r − r²·P(r²), fdlibm's rational step. One division serves both of its branches:
    /// c − 2 = −(2 − c) exactly, so r·c / (c − 2) = −(r·c / (2 − c)) exactly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> ExpQuotient(Vector512<double> r, out Vector512<double> c)
    {
        Vector512<double> t = r * r;
        Vector512<double> polynomial = t * (Vector512.Create(1.66666666666666019037e-01) + t * (Vector512.Create(-2.77777777770155933842e-03)
            + t * (Vector512.Create(6.61375632143793436117e-05) + t * (Vector512.Create(-1.65339022054652515390e-06)
            + t * Vector512.Create(4.13813679705723846039e-08)))));
        c = r - polynomial;
        return (r * c) / (Vector512.Create(2.0) - c);
    }

    /// <summary>ln x on each lane, equal to <see cref="Float64Math.LogFdlibm"/> lane by lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<double> Log(Vector512<double> x)
    {
        // The smallest normal double: NaN, zero, negatives, subnormals and +∞ take the scalar path.
        if (!Vector512.GreaterThanOrEqualAll(x, Vector512.Create(2.2250738585072014E-308)) || !Vector512.LessThanAll(x, Vector512.Create(double.PositiveInfinity)))
            return LogScalar(x);
        Vector512<long> bits = x.AsInt64();
        Vector512<long> highWord = Vector512.ShiftRightLogical(bits, 32);
        Vector512<long> k = Vector512.ShiftRightArithmetic(highWord, 20) - Vector512.Create(1023L);
        highWord &= Vector512.Create(0x000FFFFFL);
        // i is 0x100000 when the mantissa is at least √2 (then halve it: 1 + f in [√2/2, √2)).
        Vector512<long> i = (highWord + Vector512.Create(0x95F64L)) & Vector512.Create(0x100000L);
        Vector512<double> normalized = (Vector512.ShiftLeft(highWord | (i ^ Vector512.Create(0x3FF00000L)), 32)
            | (bits & Vector512.Create(0xFFFFFFFFL))).AsDouble();
        k += Vector512.ShiftRightArithmetic(i, 20);
        Vector512<double> one = Vector512.Create(1.0);
        Vector512<double> f = normalized - one;
        Vector512<long> bands = (highWord - Vector512.Create(0x6147AL)) | (Vector512.Create(0x6B851L) - highWord);
        Vector512<long> nearOne = Vector512.LessThan((Vector512.Create(2L) + highWord) & Vector512.Create(0x000FFFFFL), Vector512.Create(3L));
        if (Vector512.EqualsAll(k, Vector512<long>.Zero) && Vector512.LessThanOrEqualAll(bands, Vector512<long>.Zero) && nearOne == Vector512<long>.Zero)
        {
            // Every lane takes the k = 0, unbanded branch: f − s·(f − R).
            Vector512<double> plainS = LogQuotient(f, out Vector512<double> plainR);
            return f - plainS * (f - plainR);
        }
        return LogAnyBranch(highWord, k, f);
    }

    /// <summary><see cref="Log(Vector512{double})"/>'s general case: every branch computed and selected per lane (kept out of line).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector512<double> LogAnyBranch(Vector512<long> highWord, Vector512<long> k, Vector512<double> f)
    {
        Vector512<double> dk = Vector512.ConvertToDouble(k);
        Vector512<double> kIsZero = Vector512.Equals(dk, Vector512<double>.Zero);
        Vector512<double> kLn2High = dk * Vector512.Create(Ln2High), kLn2Low = dk * Vector512.Create(Ln2Low);

        // |f| < 2^-20
        Vector512<double> r0 = (f * f) * (Vector512.Create(0.5) - Vector512.Create(0.33333333333333333) * f);
        Vector512<double> tinyResult = Vector512.ConditionalSelect(Vector512.Equals(f, Vector512<double>.Zero),
            Vector512.ConditionalSelect(kIsZero, Vector512<double>.Zero, kLn2High + kLn2Low),
            Vector512.ConditionalSelect(kIsZero, f - r0, kLn2High - ((r0 - kLn2Low) - f)));

        Vector512<double> s = LogQuotient(f, out Vector512<double> r);
        Vector512<double> halfSquare = (Vector512.Create(0.5) * f) * f;
        Vector512<double> banded = Vector512.ConditionalSelect(kIsZero, f - (halfSquare - s * (halfSquare + r)),
            kLn2High - ((halfSquare - (s * (halfSquare + r) + kLn2Low)) - f));
        Vector512<double> unbanded = Vector512.ConditionalSelect(kIsZero, f - s * (f - r), kLn2High - ((s * (f - r) - kLn2Low) - f));
        Vector512<long> bands = (highWord - Vector512.Create(0x6147AL)) | (Vector512.Create(0x6B851L) - highWord);
        Vector512<double> general = Vector512.ConditionalSelect(Vector512.GreaterThan(bands, Vector512<long>.Zero).AsDouble(), banded, unbanded);
        Vector512<long> nearOne = Vector512.LessThan((Vector512.Create(2L) + highWord) & Vector512.Create(0x000FFFFFL), Vector512.Create(3L));
        return Vector512.ConditionalSelect(nearOne.AsDouble(), tinyResult, general);
    }

    /// <summary>s = f / (2 + f) and fdlibm's R = t2 + t1, the polynomial in s² of log's every non-tiny branch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> LogQuotient(Vector512<double> f, out Vector512<double> r)
    {
        Vector512<double> s = f / (Vector512.Create(2.0) + f);
        Vector512<double> z = s * s;
        Vector512<double> w = z * z;
        Vector512<double> t1 = w * (Vector512.Create(3.999999999940941908e-01) + w * (Vector512.Create(2.222219843214978396e-01)
            + w * Vector512.Create(1.531383769920937332e-01)));
        Vector512<double> t2 = z * (Vector512.Create(6.666666666666735130e-01) + w * (Vector512.Create(2.857142874366239149e-01)
            + w * (Vector512.Create(1.818357216161805012e-01) + w * Vector512.Create(1.479819860511658591e-01))));
        r = t2 + t1;
        return s;
    }

    private static Vector512<double> ExpScalar(Vector512<double> x) => Vector512.Create(
        Float64Math.ExpFdlibm(x[0]), Float64Math.ExpFdlibm(x[1]), Float64Math.ExpFdlibm(x[2]), Float64Math.ExpFdlibm(x[3]),
        Float64Math.ExpFdlibm(x[4]), Float64Math.ExpFdlibm(x[5]), Float64Math.ExpFdlibm(x[6]), Float64Math.ExpFdlibm(x[7]));

    private static Vector512<double> LogScalar(Vector512<double> x) => Vector512.Create(
        Float64Math.LogFdlibm(x[0]), Float64Math.LogFdlibm(x[1]), Float64Math.LogFdlibm(x[2]), Float64Math.LogFdlibm(x[3]),
        Float64Math.LogFdlibm(x[4]), Float64Math.LogFdlibm(x[5]), Float64Math.LogFdlibm(x[6]), Float64Math.LogFdlibm(x[7]));
}
