using System.Numerics;
using System.Runtime.Intrinsics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// One chunk of each newer method's per-element kernel (MagMax, TALL, Consensus, Fisher, NearSwap, RAM):
/// a <see cref="Vector{T}"/> body and a scalar tail doing the same operations in the same order, so the split point
/// never changes a bit. Products and sums are rounded on their own (the JIT does not contract to FMA).
/// </summary>
internal static unsafe class MethodKernels
{
    private const uint MagnitudeMask = 0x7FFFFFFFu;

    /// <summary>output[i] = the row value of largest magnitude key, the first row winning ties.</summary>
    public static void SelectLargestMagnitude(float* stacked, long rowLength, int rows, float* output, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var keyMask = new Vector<uint>(MagnitudeMask);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> best = Vector.Load(stacked + i);
                Vector<uint> bestKey = Vector.AsVectorUInt32(best) & keyMask;
                for (int k = 1; k < rows; k++)
                {
                    Vector<float> candidate = Vector.Load(stacked + k * rowLength + i);
                    Vector<uint> key = Vector.AsVectorUInt32(candidate) & keyMask;
                    // Strictly larger only: an equal key leaves the earlier row in place.
                    Vector<int> larger = Vector.AsVectorInt32(Vector.GreaterThan(key, bestKey));
                    best = Vector.ConditionalSelect(larger, candidate, best);
                    bestKey = Vector.Max(key, bestKey);
                }
                Vector.Store(best, output + i);
            }
        }

        for (; i < count; i++)
        {
            float best = stacked[i];
            uint bestKey = BitConverter.SingleToUInt32Bits(best) & MagnitudeMask;
            for (int k = 1; k < rows; k++)
            {
                float candidate = stacked[k * rowLength + i];
                uint key = BitConverter.SingleToUInt32Bits(candidate) & MagnitudeMask;
                if (key > bestKey)
                {
                    best = candidate;
                    bestKey = key;
                }
            }
            output[i] = best;
        }
    }

    /// <summary>
    /// Packs [ |τ| ≥ λ·|τ_MTL − τ| ] for <paramref name="count"/> elements into ⌈count / 8⌉ bytes and returns the bits
    /// set. The chunk starts on a byte boundary (chunks are multiples of 8 elements).
    /// </summary>
    public static long TallMask(float* task, float* multiTask, float lambda, byte* packed, int count)
    {
        int i = 0;
        long set = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // Eight floats, eight mask bits: the compare's sign bits are the packed byte, least significant first.
            Vector256<float> scale = Vector256.Create(lambda);
            for (; i <= count - 8; i += 8)
            {
                Vector256<float> own = Vector256.Load(task + i);
                Vector256<float> rest = scale * Vector256.Abs(Vector256.Load(multiTask + i) - own);
                uint bits = Vector256.GreaterThanOrEqual(Vector256.Abs(own), rest).ExtractMostSignificantBits();
                packed[i >> 3] = (byte)bits;
                set += BitOperations.PopCount(bits);
            }
        }

        for (; i < count; i += 8)
        {
            int end = Math.Min(count, i + 8);
            uint bits = 0;
            for (int j = i; j < end; j++)
            {
                if (MathF.Abs(task[j]) >= lambda * MathF.Abs(multiTask[j] - task[j]))
                    bits |= 1u << (j - i);
            }
            packed[i >> 3] = (byte)bits;
            set += BitOperations.PopCount(bits);
        }
        return set;
    }

    /// <summary>output[i] = bit i ? base[i] + τ_MTL[i] : base[i]; the chunk starts on a byte boundary.</summary>
    public static void TallRestore(float* baseline, float* multiTask, byte* packed, float* output, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            // Lane j tests bit j of the byte.
            Vector256<int> lanes = Vector256.Create(1, 2, 4, 8, 16, 32, 64, 128);
            for (; i <= count - 8; i += 8)
            {
                Vector256<float> clear = Vector256.Equals(Vector256.Create((int)packed[i >> 3]) & lanes, Vector256<int>.Zero).AsSingle();
                Vector256<float> b = Vector256.Load(baseline + i);
                Vector256.ConditionalSelect(clear, b, b + Vector256.Load(multiTask + i)).Store(output + i);
            }
        }

        for (; i < count; i++)
            output[i] = (packed[i >> 3] >> (i & 7) & 1) != 0 ? baseline[i] + multiTask[i] : baseline[i];
    }

    /// <summary>output[i] = (#{k : |τ_k| ≥ λ_k·|s − τ_k|} ≥ minAgreeing) ? s : +0 with s = Σ_k τ_k.</summary>
    public static void ConsensusMerge(float* stacked, long rowLength, ReadOnlySpan<float> lambdas, int minAgreeing,
        float* output, int count)
    {
        int rows = lambdas.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var threshold = new Vector<int>(minAgreeing);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> sum = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                    sum += Vector.Load(stacked + k * rowLength + i);
                Vector<int> agreeing = Vector<int>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    Vector<float> own = Vector.Load(stacked + k * rowLength + i);
                    // A true compare is −1 in every bit: subtracting it counts one agreeing task.
                    agreeing -= Vector.GreaterThanOrEqual(Vector.Abs(own), new Vector<float>(lambdas[k]) * Vector.Abs(sum - own));
                }
                Vector.Store(Vector.ConditionalSelect(Vector.GreaterThanOrEqual(agreeing, threshold), sum, Vector<float>.Zero), output + i);
            }
        }

        for (; i < count; i++)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum += stacked[k * rowLength + i];
            int agreeing = 0;
            for (int k = 0; k < rows; k++)
            {
                float own = stacked[k * rowLength + i];
                if (MathF.Abs(own) >= lambdas[k] * MathF.Abs(sum - own))
                    agreeing++;
            }
            output[i] = agreeing >= minAgreeing ? sum : 0f;
        }
    }

    /// <summary>output[i] = Σ_k f_k·θ_k / (den &lt; ε ? ε : den), f_k = w_k·F_k, den = Σ_k f_k.</summary>
    public static void FisherMerge(float* models, float* fisher, long rowLength, ReadOnlySpan<float> weights, float epsilon,
        float* output, int count)
    {
        int rows = weights.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var floor = new Vector<float>(epsilon);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> numerator = Vector<float>.Zero, denominator = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    Vector<float> f = new Vector<float>(weights[k]) * Vector.Load(fisher + k * rowLength + i);
                    numerator += f * Vector.Load(models + k * rowLength + i);
                    denominator += f;
                }
                // A NaN denominator compares false and stays NaN, as MathF.Max keeps it.
                Vector<float> divisor = Vector.ConditionalSelect(Vector.LessThan(denominator, floor), floor, denominator);
                Vector.Store(numerator / divisor, output + i);
            }
        }

        for (; i < count; i++)
        {
            float numerator = 0f, denominator = 0f;
            for (int k = 0; k < rows; k++)
            {
                float f = weights[k] * fisher[k * rowLength + i];
                numerator += f * models[k * rowLength + i];
                denominator += f;
            }
            output[i] = numerator / (denominator < epsilon ? epsilon : denominator);
        }
    }

    /// <summary>w = clamp((1 / |v0 − v1|)·t, 0, 1) or 1 when not finite; output = w·v1 + (1 − w)·v0.</summary>
    public static void NearSwap(float* v0, float* v1, float t, float* output, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var scale = new Vector<float>(t);
            var infinity = new Vector<float>(float.PositiveInfinity);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> a = Vector.Load(v0 + i), b = Vector.Load(v1 + i);
                Vector<float> w = Vector<float>.One / Vector.Abs(a - b) * scale;
                Vector<int> finite = Vector.LessThan(Vector.Abs(w), infinity); // NaN and ±∞ compare false
                w = Vector.ConditionalSelect(Vector.LessThan(w, Vector<float>.Zero), Vector<float>.Zero, w);
                w = Vector.ConditionalSelect(Vector.GreaterThan(w, Vector<float>.One), Vector<float>.One, w);
                w = Vector.ConditionalSelect(finite, w, Vector<float>.One);
                Vector.Store(w * b + (Vector<float>.One - w) * a, output + i);
            }
        }

        for (; i < count; i++)
        {
            float w = 1f / MathF.Abs(v0[i] - v1[i]) * t;
            w = float.IsFinite(w) ? Math.Clamp(w, 0f, 1f) : 1f;
            output[i] = w * v1[i] + (1f - w) * v0[i];
        }
    }

    /// <summary>output[i] = base[i] + Σ_k ((z_k·u)·a_k + (z_k·s) / max(c, 1)); see <see cref="IMergeKernels.RamMerge"/>.</summary>
    public static void RamMerge(float* deltas, long rowLength, float* baseline, ReadOnlySpan<float> uniqueScales, float epsilon,
        float* output, int count)
    {
        int rows = uniqueScales.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var floor = new Vector<float>(epsilon);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<int> contributors = Vector<int>.Zero;
                for (int k = 0; k < rows; k++)
                    contributors -= Vector.GreaterThan(Vector.Abs(Vector.Load(deltas + k * rowLength + i)), floor);
                Vector<float> unique = Vector.ConditionalSelect(Vector.Equals(contributors, Vector<int>.One), Vector<float>.One, Vector<float>.Zero);
                Vector<float> shared = Vector.ConditionalSelect(Vector.GreaterThan(contributors, Vector<int>.One), Vector<float>.One, Vector<float>.Zero);
                Vector<float> divisor = Vector.ConvertToSingle(Vector.Max(contributors, Vector<int>.One));
                Vector<float> merged = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    Vector<float> delta = Vector.Load(deltas + k * rowLength + i);
                    Vector<float> z = delta * Vector.ConditionalSelect(Vector.GreaterThan(Vector.Abs(delta), floor), Vector<float>.One, Vector<float>.Zero);
                    merged += z * unique * new Vector<float>(uniqueScales[k]) + z * shared / divisor;
                }
                Vector.Store(Vector.Load(baseline + i) + merged, output + i);
            }
        }

        for (; i < count; i++)
        {
            int contributors = 0;
            for (int k = 0; k < rows; k++)
            {
                if (MathF.Abs(deltas[k * rowLength + i]) > epsilon)
                    contributors++;
            }
            float unique = contributors == 1 ? 1f : 0f, shared = contributors > 1 ? 1f : 0f;
            float divisor = Math.Max(contributors, 1);
            float merged = 0f;
            for (int k = 0; k < rows; k++)
            {
                float delta = deltas[k * rowLength + i];
                float z = delta * (MathF.Abs(delta) > epsilon ? 1f : 0f);
                merged += z * unique * uniqueScales[k] + z * shared / divisor;
            }
            output[i] = baseline[i] + merged;
        }
    }

    /// <summary>Adds one chunk's RAM+ contribution counts: counts[k] shared, counts[rows + k] unique.</summary>
    public static void RamContributionCounts(float* deltas, long rowLength, int rows, float epsilon, Span<long> counts, int count)
    {
        for (int i = 0; i < count; i++)
        {
            int contributors = 0;
            for (int k = 0; k < rows; k++)
            {
                if (MathF.Abs(deltas[k * rowLength + i]) > epsilon)
                    contributors++;
            }
            if (contributors == 0)
                continue;
            int offset = contributors == 1 ? rows : 0;
            for (int k = 0; k < rows; k++)
            {
                if (MathF.Abs(deltas[k * rowLength + i]) > epsilon)
                    counts[offset + k]++;
            }
        }
    }

    /// <summary>output[i] = (float)(Σ_k (x_k − μ)² / rows) in float64, μ = Σ_k x_k / rows; returns the outputs ≠ 0.</summary>
    public static long VarianceAcrossRows(float* stacked, long rowLength, int rows, float* output, int count) =>
        VarianceAcrossRows(stacked, rowLength, rows, output, count, Vector512.IsHardwareAccelerated);

    /// <summary>
    /// <see cref="VarianceAcrossRows(float*, long, int, float*, int)"/> with 512-bit vectors first when
    /// <paramref name="wide"/> (8 float64 lanes: half the instructions), then 256-bit vectors, then scalars: each lane
    /// does the scalar operations in the same order, so the split points never change a bit (tests call both widths).
    /// </summary>
    internal static long VarianceAcrossRows(float* stacked, long rowLength, int rows, float* output, int count, bool wide)
    {
        // Dividing by a power of two rounds the same exact quotient as multiplying by its (exact) reciprocal, subnormal
        // results and NaN payloads included; the float64 divisions are the slowest instructions here (SCE merges two
        // task vectors on the bench: rows = 2).
        double reciprocal = BitOperations.IsPow2(rows) ? 1.0 / rows : 0;
        int i = 0;
        long zeros = 0;
        if (wide && rows == 2)
        {
            // Two rows (SCE of two task vectors): the body below unrolled, each row loaded and widened once.
            Vector512<int> zeroCount = Vector512<int>.Zero;
            for (; i <= count - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512<double> aLow, Vector512<double> aHigh) = Vector512.Widen(Vector512.Load(stacked + i));
                (Vector512<double> bLow, Vector512<double> bHigh) = Vector512.Widen(Vector512.Load(stacked + rowLength + i));
                Vector512<double> meanLow = DivideByRows(Vector512<double>.Zero + aLow + bLow, rows, reciprocal);
                Vector512<double> meanHigh = DivideByRows(Vector512<double>.Zero + aHigh + bHigh, rows, reciprocal);
                Vector512<double> aDeviationLow = aLow - meanLow, aDeviationHigh = aHigh - meanHigh;
                Vector512<double> bDeviationLow = bLow - meanLow, bDeviationHigh = bHigh - meanHigh;
                Vector512<double> sumLow = Vector512<double>.Zero + aDeviationLow * aDeviationLow + bDeviationLow * bDeviationLow;
                Vector512<double> sumHigh = Vector512<double>.Zero + aDeviationHigh * aDeviationHigh + bDeviationHigh * bDeviationHigh;
                Vector512<float> variance = Vector512.Narrow(DivideByRows(sumLow, rows, reciprocal), DivideByRows(sumHigh, rows, reciprocal));
                variance.Store(output + i);
                zeroCount -= Vector512.Equals(variance, Vector512<float>.Zero).AsInt32();
            }
            zeros += Vector512.Sum(zeroCount);
        }
        if (wide)
        {
            Vector512<int> zeroCount = Vector512<int>.Zero;
            for (; i <= count - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                // Float32 lanes widened into two float64 halves; the same operations as the scalar path, lane by lane.
                Vector512<double> meanLow = Vector512<double>.Zero, meanHigh = Vector512<double>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    (Vector512<double> low, Vector512<double> high) = Vector512.Widen(Vector512.Load(stacked + k * rowLength + i));
                    meanLow += low;
                    meanHigh += high;
                }
                meanLow = DivideByRows(meanLow, rows, reciprocal);
                meanHigh = DivideByRows(meanHigh, rows, reciprocal);
                Vector512<double> sumLow = Vector512<double>.Zero, sumHigh = Vector512<double>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    (Vector512<double> low, Vector512<double> high) = Vector512.Widen(Vector512.Load(stacked + k * rowLength + i));
                    Vector512<double> deviationLow = low - meanLow, deviationHigh = high - meanHigh;
                    sumLow += deviationLow * deviationLow;
                    sumHigh += deviationHigh * deviationHigh;
                }
                Vector512<float> variance = Vector512.Narrow(DivideByRows(sumLow, rows, reciprocal), DivideByRows(sumHigh, rows, reciprocal));
                variance.Store(output + i);
                zeroCount -= Vector512.Equals(variance, Vector512<float>.Zero).AsInt32();
            }
            zeros += Vector512.Sum(zeroCount);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<int> zeroCount = Vector256<int>.Zero;
            for (; i <= count - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256<double> meanLow = Vector256<double>.Zero, meanHigh = Vector256<double>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.Load(stacked + k * rowLength + i));
                    meanLow += low;
                    meanHigh += high;
                }
                meanLow = DivideByRows(meanLow, rows, reciprocal);
                meanHigh = DivideByRows(meanHigh, rows, reciprocal);
                Vector256<double> sumLow = Vector256<double>.Zero, sumHigh = Vector256<double>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    (Vector256<double> low, Vector256<double> high) = Vector256.Widen(Vector256.Load(stacked + k * rowLength + i));
                    Vector256<double> deviationLow = low - meanLow, deviationHigh = high - meanHigh;
                    sumLow += deviationLow * deviationLow;
                    sumHigh += deviationHigh * deviationHigh;
                }
                Vector256<float> variance = Vector256.Narrow(DivideByRows(sumLow, rows, reciprocal), DivideByRows(sumHigh, rows, reciprocal));
                variance.Store(output + i);
                zeroCount -= Vector256.Equals(variance, Vector256<float>.Zero).AsInt32();
            }
            zeros += Vector256.Sum(zeroCount);
        }

        for (; i < count; i++)
        {
            double mean = 0;
            for (int k = 0; k < rows; k++)
                mean += stacked[k * rowLength + i];
            mean /= rows;
            double sum = 0;
            for (int k = 0; k < rows; k++)
            {
                double deviation = stacked[k * rowLength + i] - mean;
                sum += deviation * deviation;
            }
            float variance = (float)(sum / rows);
            output[i] = variance;
            if (variance == 0f)
                zeros++;
        }
        return count - zeros;
    }

    /// <summary>Span form of the variance for tests: all of <paramref name="output"/>, rows = stacked.Length / output.Length.</summary>
    internal static long VarianceAcrossRows(ReadOnlySpan<float> stacked, Span<float> output, bool wide)
    {
        fixed (float* source = stacked)
        fixed (float* destination = output)
            return VarianceAcrossRows(source, output.Length, stacked.Length / Math.Max(1, output.Length), destination, output.Length, wide);
    }

    /// <summary>x / rows, as a multiplication by <paramref name="reciprocal"/> when it is exact (≠ 0: rows is a power of two).</summary>
    private static Vector512<double> DivideByRows(Vector512<double> x, int rows, double reciprocal) =>
        reciprocal != 0 ? x * reciprocal : x / (double)rows;

    /// <inheritdoc cref="DivideByRows(Vector512{double}, int, double)"/>
    private static Vector256<double> DivideByRows(Vector256<double> x, int rows, double reciprocal) =>
        reciprocal != 0 ? x * reciprocal : x / (double)rows;

    /// <summary>row[i] = +0 where selector[i] is ±0.</summary>
    public static void ClearWhereZero(float* row, float* selector, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<int> zero = Vector.Equals(Vector.Load(selector + i), Vector<float>.Zero);
                Vector.Store(Vector.ConditionalSelect(zero, Vector<float>.Zero, Vector.Load(row + i)), row + i);
            }
        }

        for (; i < count; i++)
        {
            if (selector[i] == 0f)
                row[i] = 0f;
        }
    }

    /// <summary>
    /// <see cref="SignErasedMix"/> of the task vectors taken as +0 where <paramref name="selector"/> is ±0 (none when it
    /// is null), then output = 1·baseline + 1·mixed as <see cref="ElementwiseKernels.Axpby"/> computes it: one pass
    /// instead of clearing the rows, mixing and adding the base. <paramref name="output"/> may be the selector.
    /// </summary>
    public static void SignErasedMixOntoBase(float* deltas, long rowLength, ReadOnlySpan<float> weights, float divisorFloor,
        float* selector, float* baseline, float* output, int count) =>
        SignErasedMixOntoBase(deltas, rowLength, weights, divisorFloor, selector, null, baseline, output, count, Vector512.IsHardwareAccelerated);

    /// <summary>
    /// <see cref="SignErasedMixOntoBase(float*, long, ReadOnlySpan{float}, float, float*, float*, float*, int)"/> with the
    /// selection read from its bits (bit i of byte ⌊i / 8⌋ of <paramref name="keptBits"/> set: kept), not from a float
    /// selector: a sixteenth of a bit per element instead of four bytes.
    /// </summary>
    public static void SignErasedMixOntoBaseWhereKept(float* deltas, long rowLength, ReadOnlySpan<float> weights, float divisorFloor,
        byte* keptBits, float* baseline, float* output, int count) =>
        SignErasedMixOntoBase(deltas, rowLength, weights, divisorFloor, null, keptBits, baseline, output, count, Vector512.IsHardwareAccelerated);

    /// <summary>
    /// <see cref="SignErasedMixOntoBase(float*, long, ReadOnlySpan{float}, float, float*, float*, float*, int)"/> with
    /// 512-bit vectors first when <paramref name="wide"/> (half the instructions: the kernel is compute-bound in cache),
    /// then <see cref="Vector{T}"/>, then scalars: every lane does the scalar operations in the same order, and IEEE
    /// division and comparisons do not depend on the width, so the split points never change a bit (tests call both).
    /// </summary>
    internal static void SignErasedMixOntoBase(float* deltas, long rowLength, ReadOnlySpan<float> weights, float divisorFloor,
        float* selector, byte* keptBits, float* baseline, float* output, int count, bool wide)
    {
        int rows = weights.Length;
        int i = 0;
        if (wide && rows == 2)
        {
            // Two task vectors (the bench's SCE): the body below unrolled, each row loaded and read through the selector once.
            var floor = Vector512.Create(divisorFloor);
            Vector512<float> firstWeight = Vector512.Create(weights[0]), secondWeight = Vector512.Create(weights[1]);
            for (; i <= count - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512<float> dropped = selector != null ? Vector512.Equals(Vector512.Load(selector + i), Vector512<float>.Zero)
                    : keptBits != null ? KeptBitLanes.Drops512(keptBits, i) : Vector512<float>.Zero;
                Vector512<float> first = Vector512.ConditionalSelect(dropped, Vector512<float>.Zero, Vector512.Load(deltas + i));
                Vector512<float> second = Vector512.ConditionalSelect(dropped, Vector512<float>.Zero, Vector512.Load(deltas + rowLength + i));
                Vector512<float> positive = Vector512.GreaterThanOrEqual(Vector512<float>.Zero + first + second, Vector512<float>.Zero);
                Vector512<float> firstErased = Vector512.ConditionalSelect(Vector512.ConditionalSelect(positive,
                    Vector512.GreaterThan(first, Vector512<float>.Zero), Vector512.LessThan(first, Vector512<float>.Zero)), firstWeight, Vector512<float>.Zero);
                Vector512<float> secondErased = Vector512.ConditionalSelect(Vector512.ConditionalSelect(positive,
                    Vector512.GreaterThan(second, Vector512<float>.Zero), Vector512.LessThan(second, Vector512<float>.Zero)), secondWeight, Vector512<float>.Zero);
                Vector512<float> mixed = Vector512<float>.Zero + first * firstErased + second * secondErased;
                Vector512<float> divisor = Vector512<float>.Zero + firstErased + secondErased;
                Vector512<float> merged = mixed / Vector512.ConditionalSelect(Vector512.LessThan(divisor, floor), floor, divisor);
                (Vector512<float>.One * Vector512.Load(baseline + i) + Vector512<float>.One * merged).Store(output + i);
            }
        }
        if (wide)
        {
            var floor = Vector512.Create(divisorFloor);
            for (; i <= count - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512<float> dropped = selector != null ? Vector512.Equals(Vector512.Load(selector + i), Vector512<float>.Zero)
                    : keptBits != null ? KeptBitLanes.Drops512(keptBits, i) : Vector512<float>.Zero;
                Vector512<float> sum = Vector512<float>.Zero;
                for (int k = 0; k < rows; k++)
                    sum += Vector512.ConditionalSelect(dropped, Vector512<float>.Zero, Vector512.Load(deltas + k * rowLength + i));
                Vector512<float> positive = Vector512.GreaterThanOrEqual(sum, Vector512<float>.Zero); // NaN: false, elects −1
                Vector512<float> mixed = Vector512<float>.Zero, divisor = Vector512<float>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    Vector512<float> delta = Vector512.ConditionalSelect(dropped, Vector512<float>.Zero, Vector512.Load(deltas + k * rowLength + i));
                    Vector512<float> agree = Vector512.ConditionalSelect(positive,
                        Vector512.GreaterThan(delta, Vector512<float>.Zero), Vector512.LessThan(delta, Vector512<float>.Zero));
                    Vector512<float> erased = Vector512.ConditionalSelect(agree, Vector512.Create(weights[k]), Vector512<float>.Zero);
                    mixed += delta * erased;
                    divisor += erased;
                }
                Vector512<float> merged = mixed / Vector512.ConditionalSelect(Vector512.LessThan(divisor, floor), floor, divisor);
                (Vector512<float>.One * Vector512.Load(baseline + i) + Vector512<float>.One * merged).Store(output + i);
            }
        }
        if (Vector.IsHardwareAccelerated)
        {
            var floor = new Vector<float>(divisorFloor);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                // Where the selector is zero every δ reads as +0 (ClearWhereZero's select), all other lanes as they are.
                Vector<int> dropped = selector != null ? Vector.Equals(Vector.Load(selector + i), Vector<float>.Zero)
                    : keptBits != null ? KeptBitLanes.Drops(keptBits, i) : Vector<int>.Zero;
                Vector<float> sum = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                    sum += Vector.ConditionalSelect(dropped, Vector<float>.Zero, Vector.Load(deltas + k * rowLength + i));
                Vector<int> positive = Vector.GreaterThanOrEqual(sum, Vector<float>.Zero); // NaN: false, elects −1
                Vector<float> mixed = Vector<float>.Zero, divisor = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    Vector<float> delta = Vector.ConditionalSelect(dropped, Vector<float>.Zero, Vector.Load(deltas + k * rowLength + i));
                    Vector<int> agree = Vector.ConditionalSelect(positive,
                        Vector.GreaterThan(delta, Vector<float>.Zero), Vector.LessThan(delta, Vector<float>.Zero));
                    Vector<float> erased = Vector.ConditionalSelect(agree, new Vector<float>(weights[k]), Vector<float>.Zero);
                    mixed += delta * erased;
                    divisor += erased;
                }
                Vector<float> merged = mixed / Vector.ConditionalSelect(Vector.LessThan(divisor, floor), floor, divisor);
                Vector.Store(Vector<float>.One * Vector.Load(baseline + i) + Vector<float>.One * merged, output + i);
            }
        }

        for (; i < count; i++)
        {
            bool dropped = selector != null ? selector[i] == 0f : keptBits != null && KeptBitLanes.Drops1(keptBits, i);
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum += dropped ? 0f : deltas[k * rowLength + i];
            bool positive = sum >= 0f;
            float mixed = 0f, divisor = 0f;
            for (int k = 0; k < rows; k++)
            {
                float delta = dropped ? 0f : deltas[k * rowLength + i];
                float erased = (positive ? delta > 0f : delta < 0f) ? weights[k] : 0f;
                mixed += delta * erased;
                divisor += erased;
            }
            float merged = mixed / (divisor < divisorFloor ? divisorFloor : divisor);
            output[i] = 1f * baseline[i] + 1f * merged;
        }
    }

    /// <summary>Span form of the mix onto the base for tests: one chunk of all of <paramref name="output"/>, an empty selector for none.</summary>
    internal static void SignErasedMixOntoBase(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> selector, ReadOnlySpan<float> weights,
        float divisorFloor, ReadOnlySpan<float> baseline, Span<float> output, bool wide)
    {
        fixed (float* deltas = stackedDeltas)
        fixed (float* selectorStart = selector)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
            SignErasedMixOntoBase(deltas, output.Length, weights, divisorFloor, selector.IsEmpty ? null : selectorStart, null, baseStart,
                destination, output.Length, wide);
    }

    /// <summary>Span form of the mix onto the base through selection bits, for tests: one chunk of all of <paramref name="output"/>.</summary>
    internal static void SignErasedMixOntoBaseWhereKept(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<ulong> keptBits, ReadOnlySpan<float> weights,
        float divisorFloor, ReadOnlySpan<float> baseline, Span<float> output, bool wide)
    {
        if (keptBits.Length < SelectionBits.WordCount(output.Length))
            throw new ArgumentException($"Expected {SelectionBits.WordCount(output.Length)} words for {output.Length} elements, got {keptBits.Length}.", nameof(keptBits));
        fixed (float* deltas = stackedDeltas)
        fixed (ulong* bits = keptBits)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
            SignErasedMixOntoBase(deltas, output.Length, weights, divisorFloor, null, (byte*)bits, baseStart, destination, output.Length, wide);
    }

    /// <summary>SCE's erase and mix: the elected sign's weights e_k, output = Σ δ_k·e_k / (Σ e_k floored).</summary>
    public static void SignErasedMix(float* deltas, long rowLength, ReadOnlySpan<float> weights, float divisorFloor,
        float* output, int count)
    {
        int rows = weights.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var floor = new Vector<float>(divisorFloor);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> sum = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                    sum += Vector.Load(deltas + k * rowLength + i);
                Vector<int> positive = Vector.GreaterThanOrEqual(sum, Vector<float>.Zero); // NaN: false, elects −1
                Vector<float> mixed = Vector<float>.Zero, divisor = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                {
                    Vector<float> delta = Vector.Load(deltas + k * rowLength + i);
                    Vector<int> agree = Vector.ConditionalSelect(positive,
                        Vector.GreaterThan(delta, Vector<float>.Zero), Vector.LessThan(delta, Vector<float>.Zero));
                    Vector<float> erased = Vector.ConditionalSelect(agree, new Vector<float>(weights[k]), Vector<float>.Zero);
                    mixed += delta * erased;
                    divisor += erased;
                }
                Vector.Store(mixed / Vector.ConditionalSelect(Vector.LessThan(divisor, floor), floor, divisor), output + i);
            }
        }

        for (; i < count; i++)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum += deltas[k * rowLength + i];
            bool positive = sum >= 0f;
            float mixed = 0f, divisor = 0f;
            for (int k = 0; k < rows; k++)
            {
                float delta = deltas[k * rowLength + i];
                float erased = (positive ? delta > 0f : delta < 0f) ? weights[k] : 0f;
                mixed += delta * erased;
                divisor += erased;
            }
            output[i] = mixed / (divisor < divisorFloor ? divisorFloor : divisor);
        }
    }
}
