using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Weld.Kernels;

/// <summary>
/// Conversions between the storage formats of model weights (bf16, fp16, fp8, f64, integers) and float32,
/// over spans (vectorized) and single values. Narrowing conversions round to nearest, ties to even.
/// </summary>
/// <remarks>
/// <para>bf16 and fp16 are passed as their raw bit patterns (<see cref="ushort"/>), fp8 as <see cref="byte"/>,
/// so that callers can hand over memory-mapped file bytes without a copy.</para>
/// <para>NaN handling: a NaN input always gives a NaN output with the same sign (a quiet NaN where the
/// target format has one). Rounding never turns a NaN into an infinity.</para>
/// <para>fp8 follows PyTorch's <c>tensor.to(torch.float8_e4m3fn)</c> / <c>to(torch.float8_e5m2)</c>
/// bit for bit (c10's <c>fp8e4m3fn_from_fp32_value</c> / <c>fp8e5m2_from_fp32_value</c>):
/// E4M3FN has no infinity, so values whose rounded magnitude would exceed 448 (that is |x| &gt; 464),
/// ±Inf and NaN become NaN (<c>S.1111.111</c>) — there is no saturation to ±448. E5M2 is IEEE-like:
/// overflow gives ±Inf, NaN stays NaN.</para>
/// </remarks>
public static class FloatConversions
{
    private const uint SignMask = 0x8000_0000u;
    private const uint AbsMask = 0x7FFF_FFFFu;
    private const uint SingleInfinityBits = 0x7F80_0000u;

    private static readonly float[] s_e4m3ToSingle = BuildFp8Table(DecodeFp8E4M3);
    private static readonly float[] s_e5m2ToSingle = BuildFp8Table(DecodeFp8E5M2);

    // ---------------------------------------------------------------- bf16

    /// <summary>Widens one bfloat16 bit pattern to float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Bf16ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);

    /// <summary>Narrows one float32 to a bfloat16 bit pattern, rounding to nearest even; NaN stays a quiet NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToBf16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & AbsMask) > SingleInfinityBits)
        {
            // Truncating the payload could leave an all-zero mantissa (= Inf); setting the quiet bit keeps a NaN.
            return (ushort)((bits >> 16) | 0x0040u);
        }

        uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + roundingBias) >> 16);
    }

    /// <summary>Widens bfloat16 bit patterns to float32 (exact). <paramref name="destination"/> must be at least as long.</summary>
    public static void Bf16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        ref ushort input = ref MemoryMarshal.GetReference(source);
        ref uint output = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        nuint n = (nuint)source.Length, i = 0;
        // Explicit 512/256-bit widening (vpmovzxwd + shift): this runs on every input byte of a merge.
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector512<ushort>.Count <= n; i += (nuint)Vector512<ushort>.Count)
            {
                (Vector512<uint> low, Vector512<uint> high) = Vector512.Widen(Vector512.LoadUnsafe(ref input, i));
                Vector512.ShiftLeft(low, 16).StoreUnsafe(ref output, i);
                Vector512.ShiftLeft(high, 16).StoreUnsafe(ref output, i + (nuint)Vector512<uint>.Count);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<ushort>.Count <= n; i += (nuint)Vector256<ushort>.Count)
            {
                (Vector256<uint> low, Vector256<uint> high) = Vector256.Widen(Vector256.LoadUnsafe(ref input, i));
                Vector256.ShiftLeft(low, 16).StoreUnsafe(ref output, i);
                Vector256.ShiftLeft(high, 16).StoreUnsafe(ref output, i + (nuint)Vector256<uint>.Count);
            }
        }

        for (; i < n; i++)
            Unsafe.Add(ref output, i) = (uint)Unsafe.Add(ref input, i) << 16;
    }

    /// <summary>
    /// destination[i] = bf16(source[i]) − subtrahend[i]: the widening of <see cref="Bf16ToSingle(ReadOnlySpan{ushort}, Span{float})"/>
    /// and one float32 subtraction, bit-identical to widening first and subtracting after (the widening is exact), in
    /// one pass while the decoded values are still in registers. A loader forms task vectors θ − θ_base with it.
    /// <paramref name="subtrahend"/> and <paramref name="destination"/> must be at least as long as the source.
    /// </summary>
    public static void Bf16ToSingleMinus(ReadOnlySpan<ushort> source, ReadOnlySpan<float> subtrahend, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        if (subtrahend.Length < source.Length)
            throw new ArgumentException($"Subtrahend holds {subtrahend.Length} elements, fewer than the {source.Length} source elements.", nameof(subtrahend));
        ref ushort input = ref MemoryMarshal.GetReference(source);
        ref float minus = ref MemoryMarshal.GetReference(subtrahend);
        ref float output = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)source.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            nuint half = (nuint)Vector512<uint>.Count;
            for (; i + (nuint)Vector512<ushort>.Count <= n; i += (nuint)Vector512<ushort>.Count)
            {
                (Vector512<uint> low, Vector512<uint> high) = Vector512.Widen(Vector512.LoadUnsafe(ref input, i));
                (Vector512.ShiftLeft(low, 16).AsSingle() - Vector512.LoadUnsafe(ref minus, i)).StoreUnsafe(ref output, i);
                (Vector512.ShiftLeft(high, 16).AsSingle() - Vector512.LoadUnsafe(ref minus, i + half)).StoreUnsafe(ref output, i + half);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            nuint half = (nuint)Vector256<uint>.Count;
            for (; i + (nuint)Vector256<ushort>.Count <= n; i += (nuint)Vector256<ushort>.Count)
            {
                (Vector256<uint> low, Vector256<uint> high) = Vector256.Widen(Vector256.LoadUnsafe(ref input, i));
                (Vector256.ShiftLeft(low, 16).AsSingle() - Vector256.LoadUnsafe(ref minus, i)).StoreUnsafe(ref output, i);
                (Vector256.ShiftLeft(high, 16).AsSingle() - Vector256.LoadUnsafe(ref minus, i + half)).StoreUnsafe(ref output, i + half);
            }
        }

        for (; i < n; i++)
            Unsafe.Add(ref output, i) = Bf16ToSingle(Unsafe.Add(ref input, i)) - Unsafe.Add(ref minus, i);
    }

    /// <summary>
    /// Narrows float32 values to bfloat16 bit patterns, rounding to nearest even (overflow rounds to ±Inf as
    /// IEEE rounding does); NaN stays a quiet NaN with its sign.
    /// </summary>
    public static void SingleToBf16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        CheckLengths(source.Length, destination.Length);
        ref uint input = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(source));
        ref ushort output = ref MemoryMarshal.GetReference(destination);
        nuint n = (nuint)source.Length, i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector512<ushort>.Count <= n; i += (nuint)Vector512<ushort>.Count)
            {
                Vector512<uint> low = RoundToBf16(Vector512.LoadUnsafe(ref input, i));
                Vector512<uint> high = RoundToBf16(Vector512.LoadUnsafe(ref input, i + (nuint)Vector512<uint>.Count));
                Vector512.Narrow(low, high).StoreUnsafe(ref output, i);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i + (nuint)Vector256<ushort>.Count <= n; i += (nuint)Vector256<ushort>.Count)
            {
                Vector256<uint> low = RoundToBf16(Vector256.LoadUnsafe(ref input, i));
                Vector256<uint> high = RoundToBf16(Vector256.LoadUnsafe(ref input, i + (nuint)Vector256<uint>.Count));
                Vector256.Narrow(low, high).StoreUnsafe(ref output, i);
            }
        }

        for (; i < n; i++)
            Unsafe.Add(ref output, i) = SingleToBf16(BitConverter.UInt32BitsToSingle(Unsafe.Add(ref input, i)));
    }

    // Round to nearest even on the upper 16 bits; a NaN keeps its sign and top payload bits and is made quiet.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<uint> RoundToBf16(Vector512<uint> bits)
    {
        Vector512<uint> isNaN = Vector512.GreaterThan(bits & Vector512.Create(AbsMask), Vector512.Create(SingleInfinityBits));
        Vector512<uint> top = Vector512.ShiftRightLogical(bits, 16);
        Vector512<uint> rounded = Vector512.ShiftRightLogical(bits + Vector512.Create(0x7FFFu) + (top & Vector512<uint>.One), 16);
        return Vector512.ConditionalSelect(isNaN, top | Vector512.Create(0x0040u), rounded);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RoundToBf16(Vector256<uint> bits)
    {
        Vector256<uint> isNaN = Vector256.GreaterThan(bits & Vector256.Create(AbsMask), Vector256.Create(SingleInfinityBits));
        Vector256<uint> top = Vector256.ShiftRightLogical(bits, 16);
        Vector256<uint> rounded = Vector256.ShiftRightLogical(bits + Vector256.Create(0x7FFFu) + (top & Vector256<uint>.One), 16);
        return Vector256.ConditionalSelect(isNaN, top | Vector256.Create(0x0040u), rounded);
    }

    // ---------------------------------------------------------------- fp16

    /// <summary>Widens one IEEE half bit pattern to float32 (exact, subnormals included).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HalfToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>Narrows one float32 to an IEEE half bit pattern: nearest even, overflow to ±Inf, NaN kept.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort SingleToHalf(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Widens IEEE half bit patterns to float32 (exact, subnormals included).</summary>
    public static void HalfToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        // TensorPrimitives carries a vectorized, exact half -> single conversion; reuse it on the raw bits.
        TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(source), destination.Slice(0, source.Length));
    }

    /// <summary>Narrows float32 values to IEEE half bit patterns: nearest even, overflow to ±Inf, subnormals exact, NaN kept.</summary>
    public static void SingleToHalf(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<ushort, Half>(destination.Slice(0, source.Length)));
    }

    // ---------------------------------------------------------------- fp8

    /// <summary>Widens one fp8 E4M3FN value (bias 7, no infinities, S.1111.111 = NaN) to float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fp8E4M3ToSingle(byte bits) => s_e4m3ToSingle[bits];

    /// <summary>Widens one fp8 E5M2 value (bias 15, IEEE-like with ±Inf and NaN) to float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Fp8E5M2ToSingle(byte bits) => s_e5m2ToSingle[bits];

    /// <summary>Widens fp8 E4M3FN values to float32 (exact; a 256-entry table beats arithmetic here).</summary>
    public static void Fp8E4M3ToSingle(ReadOnlySpan<byte> source, Span<float> destination) =>
        LookUp(source, destination, s_e4m3ToSingle);

    /// <summary>Widens fp8 E5M2 values to float32 (exact).</summary>
    public static void Fp8E5M2ToSingle(ReadOnlySpan<byte> source, Span<float> destination) =>
        LookUp(source, destination, s_e5m2ToSingle);

    /// <summary>
    /// Narrows one float32 to fp8 E4M3FN with PyTorch's semantics: nearest even; |x| &gt; 464 (rounds past 448),
    /// ±Inf and NaN give NaN with the input's sign; no saturation.
    /// </summary>
    public static byte SingleToFp8E4M3(float value)
    {
        // Port of c10::detail::fp8e4m3fn_from_fp32_value.
        const uint firstUnrepresentable = 1087u << 20; // 480.0f
        const uint denormMagic = 141u << 23;           // ((127 - 7) + (23 - 3) + 1) << 23
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint sign = bits & SignMask;
        bits ^= sign;
        uint result;
        if (bits >= firstUnrepresentable)
        {
            result = 0x7F;
        }
        else if (bits < 121u << 23)
        {
            // Below the smallest normal (2^-6): adding a magic float lets the FPU do the rounding to a subnormal.
            uint sum = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(bits) + BitConverter.UInt32BitsToSingle(denormMagic));
            result = sum - denormMagic;
        }
        else
        {
            uint mantissaOdd = (bits >> 20) & 1u;
            bits += unchecked((uint)((7 - 127) << 23)) + 0x7FFFFu + mantissaOdd;
            result = bits >> 20;
        }

        return (byte)(result | (sign >> 24));
    }

    /// <summary>
    /// Narrows one float32 to fp8 E5M2 with PyTorch's semantics: nearest even, overflow to ±Inf, NaN stays NaN.
    /// </summary>
    public static byte SingleToFp8E5M2(float value)
    {
        // Port of c10::detail::fp8e5m2_from_fp32_value.
        const uint firstUnrepresentable = 143u << 23; // 65536.0f
        const uint denormMagic = 134u << 23;          // ((127 - 15) + (23 - 2) + 1) << 23
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint sign = bits & SignMask;
        bits ^= sign;
        uint result;
        if (bits >= firstUnrepresentable)
        {
            result = bits > SingleInfinityBits ? 0x7Fu : 0x7Cu;
        }
        else if (bits < 113u << 23)
        {
            uint sum = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(bits) + BitConverter.UInt32BitsToSingle(denormMagic));
            result = sum - denormMagic;
        }
        else
        {
            uint mantissaOdd = (bits >> 21) & 1u;
            bits += unchecked((uint)((15 - 127) << 23)) + 0xFFFFFu + mantissaOdd;
            result = bits >> 21;
        }

        return (byte)(result | (sign >> 24));
    }

    /// <summary>Narrows float32 values to fp8 E4M3FN (see <see cref="SingleToFp8E4M3(float)"/>).</summary>
    public static void SingleToFp8E4M3(ReadOnlySpan<float> source, Span<byte> destination)
    {
        CheckLengths(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
            destination[i] = SingleToFp8E4M3(source[i]);
    }

    /// <summary>Narrows float32 values to fp8 E5M2 (see <see cref="SingleToFp8E5M2(float)"/>).</summary>
    public static void SingleToFp8E5M2(ReadOnlySpan<float> source, Span<byte> destination)
    {
        CheckLengths(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
            destination[i] = SingleToFp8E5M2(source[i]);
    }

    // ---------------------------------------------------------------- f64 and integers

    /// <summary>Narrows float64 values to float32 (IEEE rounding: nearest even, overflow to ±Inf).</summary>
    public static void DoubleToSingle(ReadOnlySpan<double> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Widens float32 values to float64 (exact).</summary>
    public static void SingleToDouble(ReadOnlySpan<float> source, Span<double> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Converts signed 64-bit integers to float32 (nearest float32).</summary>
    public static void Int64ToSingle(ReadOnlySpan<long> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Converts signed 32-bit integers to float32 (nearest float32).</summary>
    public static void Int32ToSingle(ReadOnlySpan<int> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Converts signed 16-bit integers to float32 (exact).</summary>
    public static void Int16ToSingle(ReadOnlySpan<short> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Converts signed 8-bit integers to float32 (exact).</summary>
    public static void SByteToSingle(ReadOnlySpan<sbyte> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Converts unsigned 8-bit integers to float32 (exact).</summary>
    public static void ByteToSingle(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        TensorPrimitives.ConvertTruncating(source, destination.Slice(0, source.Length));
    }

    /// <summary>Converts booleans stored as bytes to float32: 0 gives 0, any other byte gives 1.</summary>
    public static void BoolToSingle(ReadOnlySpan<byte> source, Span<float> destination)
    {
        CheckLengths(source.Length, destination.Length);
        for (int i = 0; i < source.Length; i++)
            destination[i] = source[i] != 0 ? 1f : 0f;
    }

    // ---------------------------------------------------------------- helpers

    private static void LookUp(ReadOnlySpan<byte> source, Span<float> destination, float[] table)
    {
        CheckLengths(source.Length, destination.Length);
        ReadOnlySpan<float> lookup = table;
        for (int i = 0; i < source.Length; i++)
            destination[i] = lookup[source[i]];
    }

    private static void CheckLengths(int sourceLength, int destinationLength)
    {
        if (destinationLength < sourceLength)
        {
            throw new ArgumentException(
                $"Destination holds {destinationLength} elements, fewer than the {sourceLength} source elements.",
                "destination");
        }
    }

    private static float[] BuildFp8Table(Func<byte, float> decode)
    {
        var table = new float[256];
        for (int i = 0; i < 256; i++)
            table[i] = decode((byte)i);
        return table;
    }

    private static float DecodeFp8E4M3(byte bits)
    {
        uint sign = (uint)(bits & 0x80) << 24;
        int exponent = (bits >> 3) & 0xF;
        int mantissa = bits & 0x7;
        if (exponent == 0xF && mantissa == 0x7)
            return BitConverter.UInt32BitsToSingle(sign | 0x7FC0_0000u);
        float magnitude = exponent == 0
            ? mantissa * (1f / 512f)                                // subnormal: m * 2^-9
            : BitConverter.UInt32BitsToSingle((uint)(exponent - 7 + 127) << 23 | (uint)mantissa << 20);
        return BitConverter.UInt32BitsToSingle(sign | BitConverter.SingleToUInt32Bits(magnitude));
    }

    // E5M2 is the top byte of an IEEE half, so widening through Half is exact (Inf and NaN included).
    private static float DecodeFp8E5M2(byte bits) => HalfToSingle((ushort)(bits << 8));
}
