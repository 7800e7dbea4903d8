using Xunit;

namespace Weld.Kernels.Tests.Conversions;

/// <summary>
/// Checks every conversion against plain scalar references written here from the format definitions
/// (value = (1 + m / 2^M) · 2^(e − bias), nearest-even by explicit search over the target's values).
/// </summary>
public sealed class FloatConversionsTests
{
    // ------------------------------------------------------------------ references

    /// <summary>A small float format: exponent bits, mantissa bits, bias, and how its top code is used.</summary>
    private sealed record Format(int ExponentBits, int MantissaBits, bool Ieee)
    {
        public int Bias => (1 << (ExponentBits - 1)) - 1;
        public int SignShift => ExponentBits + MantissaBits;

        /// <summary>Decodes a bit pattern to a double from the definition (NaN for NaN codes).</summary>
        public double Decode(uint bits)
        {
            int sign = (int)(bits >> SignShift) & 1;
            int exponent = (int)(bits >> MantissaBits) & ((1 << ExponentBits) - 1);
            int mantissa = (int)bits & ((1 << MantissaBits) - 1);
            int maxExponent = (1 << ExponentBits) - 1;
            double magnitude;
            if (Ieee && exponent == maxExponent)
                magnitude = mantissa == 0 ? double.PositiveInfinity : double.NaN;
            else if (!Ieee && exponent == maxExponent && mantissa == (1 << MantissaBits) - 1)
                magnitude = double.NaN; // E4M3FN: S.1111.111 is the only NaN, no infinities
            else if (exponent == 0)
                magnitude = mantissa / (double)(1 << MantissaBits) * Math.Pow(2, 1 - Bias);
            else
                magnitude = (1 + mantissa / (double)(1 << MantissaBits)) * Math.Pow(2, exponent - Bias);
            // Set the sign bit explicitly: negating a NaN in C# does not define its sign.
            ulong magnitudeBits = BitConverter.DoubleToUInt64Bits(magnitude) & ~(1UL << 63);
            return BitConverter.UInt64BitsToDouble(magnitudeBits | ((ulong)sign << 63));
        }

        /// <summary>
        /// Rounds |x| to nearest, ties to the even code, over the list of the format's non-negative finite values
        /// plus one "overflow" entry one step above the largest (±Inf for IEEE formats, the NaN code for E4M3FN,
        /// which is where PyTorch's rounding lands).
        /// </summary>
        public uint Encode(float value)
        {
            uint sign = BitConverter.SingleToUInt32Bits(value) >> 31;
            uint signBit = sign << SignShift;
            uint nanCode = Ieee ? ((uint)((1 << ExponentBits) - 1) << MantissaBits) | (1u << (MantissaBits - 1))
                : (1u << SignShift) - 1;
            if (float.IsNaN(value)) return signBit | nanCode;
            (double[] values, uint[] codes) = PositiveTable();
            double magnitude = Math.Abs((double)value);
            if (magnitude >= values[^1]) return signBit | codes[^1];
            int index = Array.BinarySearch(values, magnitude);
            if (index >= 0) return signBit | codes[index];
            int above = ~index;
            int below = above - 1;
            double downDistance = magnitude - values[below];
            double upDistance = values[above] - magnitude;
            uint code = downDistance < upDistance ? codes[below]
                : upDistance < downDistance ? codes[above]
                : (codes[below] & 1) == 0 ? codes[below] : codes[above];
            return signBit | code;
        }

        private (double[], uint[])? _table;

        private (double[] Values, uint[] Codes) PositiveTable()
        {
            if (_table is { } cached) return cached;
            var values = new List<double>();
            var codes = new List<uint>();
            for (uint code = 0; code < 1u << SignShift; code++)
            {
                double v = Decode(code);
                if (double.IsFinite(v)) { values.Add(v); codes.Add(code); }
            }

            // One step above the largest finite value: 2^(emax+1) for IEEE formats; for E4M3FN the step to
            // the would-be code 1111.111 is 480 (= 448 + 32) and that code is NaN.
            double largest = values[^1];
            double step = largest - values[^2];
            values.Add(largest + step);
            codes.Add(Ieee ? (uint)((1 << ExponentBits) - 1) << MantissaBits : (1u << SignShift) - 1);
            _table = (values.ToArray(), codes.ToArray());
            return _table.Value;
        }
    }

    private static readonly Format s_bf16 = new(8, 7, Ieee: true);
    private static readonly Format s_fp16 = new(5, 10, Ieee: true);
    private static readonly Format s_e4m3 = new(4, 3, Ieee: false);
    private static readonly Format s_e5m2 = new(5, 2, Ieee: true);

    private static void AssertSameFloat(double expected, float actual, string context)
    {
        if (double.IsNaN(expected))
        {
            Assert.True(float.IsNaN(actual), $"{context}: expected NaN, got {actual}");
            Assert.Equal(double.IsNegative(expected), float.IsNegative(actual));
            return;
        }

        Assert.True((float)expected == actual && double.IsNegative(expected) == float.IsNegative(actual),
            $"{context}: expected {expected:R}, got {actual:R}");
    }

    private static void AssertSameCode(uint expected, uint actual, Format format, float input)
    {
        if (double.IsNaN(format.Decode(expected)))
        {
            Assert.True(double.IsNaN(format.Decode(actual)), $"{input:R}: expected a NaN code, got 0x{actual:X}");
            Assert.Equal(expected >> format.SignShift, actual >> format.SignShift);
            return;
        }

        Assert.True(expected == actual, $"{input:R} (0x{BitConverter.SingleToUInt32Bits(input):X8}): expected 0x{expected:X}, got 0x{actual:X}");
    }

    /// <summary>Random float32 bit patterns (every class: NaN, Inf, subnormal, normal) plus special values.</summary>
    private static float[] InterestingFloats(int seed, int count)
    {
        var random = new System.Random(seed);
        var list = new List<float>
        {
            0f, -0f, float.PositiveInfinity, float.NegativeInfinity, float.NaN, -float.NaN,
            BitConverter.UInt32BitsToSingle(0x7F800001), BitConverter.UInt32BitsToSingle(0xFF800001),
            BitConverter.UInt32BitsToSingle(0x7FFFFFFF), BitConverter.UInt32BitsToSingle(0xFFFFFFFF),
            float.MaxValue, float.MinValue, float.Epsilon, -float.Epsilon, 1e-40f, -1e-40f,
            65504f, 65519.99f, 65520f, 65536f, -65520f, 448f, 464f, 464.1f, 479.9f, 480f, 57344f, 61440f, 61441f,
        };
        for (int i = 0; i < count; i++)
            list.Add(BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)));
        // Values in the interesting ranges of the small formats.
        for (int i = 0; i < count; i++)
            list.Add((float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-30, 20))));
        return list.ToArray();
    }

    /// <summary>Exact midpoints between every pair of adjacent finite codes (ties) and their neighbours.</summary>
    private static float[] Ties(Format format, uint maxFiniteCode)
    {
        var list = new List<float>();
        for (uint code = 0; code < maxFiniteCode; code++)
        {
            double low = format.Decode(code), high = format.Decode(code + 1);
            float mid = (float)((low + high) / 2);
            Assert.Equal((low + high) / 2, (double)mid); // representable in float32 by construction
            list.Add(mid);
            list.Add(-mid);
            list.Add(MathF.BitIncrement(mid));
            list.Add(MathF.BitDecrement(mid));
        }

        // The tie between the largest finite value and the overflow step.
        double largest = format.Decode(maxFiniteCode);
        double step = largest - format.Decode(maxFiniteCode - 1);
        list.Add((float)(largest + step / 2));
        list.Add(MathF.BitDecrement((float)(largest + step / 2)));
        return list.ToArray();
    }

    // ------------------------------------------------------------------ widening: every pattern

    [Fact]
    public void Bf16ToSingle_AllPatterns_MatchDefinition()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++) all[i] = (ushort)i;
        var spanResult = new float[all.Length];
        FloatConversions.Bf16ToSingle(all, spanResult);
        for (int i = 0; i < all.Length; i++)
        {
            double expected = s_bf16.Decode((uint)i);
            AssertSameFloat(expected, spanResult[i], $"bf16 0x{i:X4} (span)");
            AssertSameFloat(expected, FloatConversions.Bf16ToSingle((ushort)i), $"bf16 0x{i:X4} (scalar)");
            if (!double.IsNaN(expected))
                Assert.Equal((uint)i << 16, BitConverter.SingleToUInt32Bits(spanResult[i]));
        }
    }

    [Fact]
    public void HalfToSingle_AllPatterns_MatchDefinition()
    {
        var all = new ushort[65536];
        for (int i = 0; i < all.Length; i++) all[i] = (ushort)i;
        var spanResult = new float[all.Length];
        FloatConversions.HalfToSingle(all, spanResult);
        for (int i = 0; i < all.Length; i++)
        {
            double expected = s_fp16.Decode((uint)i);
            AssertSameFloat(expected, spanResult[i], $"fp16 0x{i:X4} (span)");
            AssertSameFloat(expected, FloatConversions.HalfToSingle((ushort)i), $"fp16 0x{i:X4} (scalar)");
        }
    }

    [Fact]
    public void Fp8ToSingle_AllPatterns_MatchDefinition()
    {
        var all = new byte[256];
        for (int i = 0; i < 256; i++) all[i] = (byte)i;
        var e4m3 = new float[256];
        var e5m2 = new float[256];
        FloatConversions.Fp8E4M3ToSingle(all, e4m3);
        FloatConversions.Fp8E5M2ToSingle(all, e5m2);
        for (int i = 0; i < 256; i++)
        {
            AssertSameFloat(s_e4m3.Decode((uint)i), e4m3[i], $"e4m3 0x{i:X2}");
            AssertSameFloat(s_e4m3.Decode((uint)i), FloatConversions.Fp8E4M3ToSingle((byte)i), $"e4m3 0x{i:X2} (scalar)");
            AssertSameFloat(s_e5m2.Decode((uint)i), e5m2[i], $"e5m2 0x{i:X2}");
            AssertSameFloat(s_e5m2.Decode((uint)i), FloatConversions.Fp8E5M2ToSingle((byte)i), $"e5m2 0x{i:X2} (scalar)");
        }

        // Spot checks of the format definitions themselves.
        Assert.Equal(448f, e4m3[0x7E]);
        Assert.True(float.IsNaN(e4m3[0x7F]) && float.IsNaN(e4m3[0xFF]));
        Assert.Equal(MathF.Pow(2, -9), e4m3[0x01]);
        Assert.Equal(57344f, e5m2[0x7B]);
        Assert.Equal(float.PositiveInfinity, e5m2[0x7C]);
    }

    // ------------------------------------------------------------------ narrowing

    [Fact]
    public void SingleToBf16_RandomAndTies_MatchNearestEven()
    {
        float[] inputs = [.. InterestingFloats(1, 200_000), .. Ties(s_bf16, 0x7F7F)];
        var spanResult = new ushort[inputs.Length];
        FloatConversions.SingleToBf16(inputs, spanResult);
        for (int i = 0; i < inputs.Length; i++)
        {
            uint expected = s_bf16.Encode(inputs[i]);
            AssertSameCode(expected, spanResult[i], s_bf16, inputs[i]);
            AssertSameCode(expected, FloatConversions.SingleToBf16(inputs[i]), s_bf16, inputs[i]);
        }
    }

    [Fact]
    public void SingleToBf16_NaNNeverBecomesInfinity()
    {
        // NaNs whose payload lives only in the low 16 bits would truncate to an infinity pattern.
        float[] nans = [BitConverter.UInt32BitsToSingle(0x7F800001), BitConverter.UInt32BitsToSingle(0xFF80FFFF),
            BitConverter.UInt32BitsToSingle(0x7FFFFFFF), BitConverter.UInt32BitsToSingle(0x7F80_8000)];
        var result = new ushort[nans.Length];
        FloatConversions.SingleToBf16(nans, result);
        for (int i = 0; i < nans.Length; i++)
        {
            Assert.True(float.IsNaN(FloatConversions.Bf16ToSingle(result[i])), $"0x{BitConverter.SingleToUInt32Bits(nans[i]):X8}");
            Assert.Equal(BitConverter.SingleToUInt32Bits(nans[i]) >> 31, (uint)result[i] >> 15);
            Assert.NotEqual(0, result[i] & 0x0040); // quiet
        }
    }

    [Fact]
    public void SingleToHalf_RandomAndTies_MatchNearestEvenAndSystemHalf()
    {
        float[] inputs = [.. InterestingFloats(2, 200_000), .. Ties(s_fp16, 0x7BFF)];
        var spanResult = new ushort[inputs.Length];
        FloatConversions.SingleToHalf(inputs, spanResult);
        for (int i = 0; i < inputs.Length; i++)
        {
            uint expected = s_fp16.Encode(inputs[i]);
            AssertSameCode(expected, spanResult[i], s_fp16, inputs[i]);
            AssertSameCode(expected, FloatConversions.SingleToHalf(inputs[i]), s_fp16, inputs[i]);
            if (!float.IsNaN(inputs[i]))
                Assert.Equal(BitConverter.HalfToUInt16Bits((Half)inputs[i]), spanResult[i]);
        }

        Assert.Equal(0x7BFF, FloatConversions.SingleToHalf(65519.99f)); // just below the overflow tie
        Assert.Equal(0x7C00, FloatConversions.SingleToHalf(65520f));    // the tie rounds to even = Inf
        Assert.Equal(0x0001, FloatConversions.SingleToHalf(MathF.Pow(2, -24)));
        Assert.Equal(0x0000, FloatConversions.SingleToHalf(MathF.Pow(2, -25)));   // tie to even (zero)
        Assert.Equal(0x0002, FloatConversions.SingleToHalf(3 * MathF.Pow(2, -25))); // tie 1.5 ulp -> 2
    }

    [Fact]
    public void SingleToFp8_RandomAndTies_MatchTorchSemantics()
    {
        float[] e4m3Inputs = [.. InterestingFloats(3, 100_000), .. Ties(s_e4m3, 0x7E)];
        var e4m3 = new byte[e4m3Inputs.Length];
        FloatConversions.SingleToFp8E4M3(e4m3Inputs, e4m3);
        for (int i = 0; i < e4m3Inputs.Length; i++)
            AssertSameCode(s_e4m3.Encode(e4m3Inputs[i]), e4m3[i], s_e4m3, e4m3Inputs[i]);

        float[] e5m2Inputs = [.. InterestingFloats(4, 100_000), .. Ties(s_e5m2, 0x7B)];
        var e5m2 = new byte[e5m2Inputs.Length];
        FloatConversions.SingleToFp8E5M2(e5m2Inputs, e5m2);
        for (int i = 0; i < e5m2Inputs.Length; i++)
            AssertSameCode(s_e5m2.Encode(e5m2Inputs[i]), e5m2[i], s_e5m2, e5m2Inputs[i]);

        // torch: 464 is the tie 448|NaN-code and goes to 448; above it (and Inf) become NaN; no saturation.
        Assert.Equal(0x7E, FloatConversions.SingleToFp8E4M3(464f));
        Assert.Equal(0x7F, FloatConversions.SingleToFp8E4M3(465f));
        Assert.Equal(0x7F, FloatConversions.SingleToFp8E4M3(float.PositiveInfinity));
        Assert.Equal(0xFF, FloatConversions.SingleToFp8E4M3(-1e6f));
        Assert.Equal(0x7C, FloatConversions.SingleToFp8E5M2(61440f));
        Assert.Equal(0x7B, FloatConversions.SingleToFp8E5M2(61439f));
        Assert.Equal(0xFC, FloatConversions.SingleToFp8E5M2(float.NegativeInfinity));
    }

    // ------------------------------------------------------------------ round trips and lengths

    [Fact]
    public void RoundTrips_AreIdentityOnEveryNonNaNPattern()
    {
        var all16 = new ushort[65536];
        for (int i = 0; i < all16.Length; i++) all16[i] = (ushort)i;
        var wide = new float[65536];
        var back = new ushort[65536];

        FloatConversions.Bf16ToSingle(all16, wide);
        FloatConversions.SingleToBf16(wide, back);
        for (int i = 0; i < all16.Length; i++)
            if (!float.IsNaN(wide[i])) Assert.Equal(all16[i], back[i]);
            else Assert.True(float.IsNaN(FloatConversions.Bf16ToSingle(back[i])));

        FloatConversions.HalfToSingle(all16, wide);
        FloatConversions.SingleToHalf(wide, back);
        for (int i = 0; i < all16.Length; i++)
            if (!float.IsNaN(wide[i])) Assert.Equal(all16[i], back[i]);
            else Assert.True(float.IsNaN(FloatConversions.HalfToSingle(back[i])));

        for (int i = 0; i < 256; i++)
        {
            float e4 = FloatConversions.Fp8E4M3ToSingle((byte)i);
            byte e4Back = FloatConversions.SingleToFp8E4M3(e4);
            if (float.IsNaN(e4)) Assert.True(float.IsNaN(FloatConversions.Fp8E4M3ToSingle(e4Back)));
            else Assert.Equal(i, e4Back);
            float e5 = FloatConversions.Fp8E5M2ToSingle((byte)i);
            byte e5Back = FloatConversions.SingleToFp8E5M2(e5);
            if (float.IsNaN(e5)) Assert.True(float.IsNaN(FloatConversions.Fp8E5M2ToSingle(e5Back)));
            else Assert.Equal(i, e5Back);
        }
    }

    [Fact]
    public void SpanMethods_HandleEveryTailLength_LikeScalarMethods()
    {
        var random = new System.Random(5);
        for (int length = 0; length <= 70; length++)
        {
            var floats = new float[length];
            for (int i = 0; i < length; i++) floats[i] = (float)(random.NextDouble() * 8 - 4);
            var bf16 = new ushort[length + 3];
            FloatConversions.SingleToBf16(floats, bf16);
            var wide = new float[length + 3];
            FloatConversions.Bf16ToSingle(bf16.AsSpan(0, length), wide);
            for (int i = 0; i < length; i++)
            {
                Assert.Equal(FloatConversions.SingleToBf16(floats[i]), bf16[i]);
                Assert.Equal(FloatConversions.Bf16ToSingle(bf16[i]), wide[i]);
            }

            for (int i = length; i < length + 3; i++)
            {
                Assert.Equal(0, bf16[i]);   // nothing written past the source length
                Assert.Equal(0f, wide[i]);
            }
        }
    }

    [Fact]
    public void WideningFromDoubleAndIntegers_MatchCasts()
    {
        double[] doubles = [0, -0.0, 1.5, 1e300, -1e300, double.NaN, 1.0000000596046448, 3.4028235677973366e38, 1e-46];
        var floats = new float[doubles.Length];
        FloatConversions.DoubleToSingle(doubles, floats);
        for (int i = 0; i < doubles.Length; i++)
            Assert.Equal(BitConverter.SingleToUInt32Bits((float)doubles[i]), BitConverter.SingleToUInt32Bits(floats[i]));

        var back = new double[floats.Length];
        FloatConversions.SingleToDouble(floats, back);
        for (int i = 0; i < floats.Length; i++) Assert.Equal((double)floats[i], back[i]);

        long[] longs = [0, -1, long.MaxValue, long.MinValue, (1L << 24) + 1, 123456789];
        var fromLongs = new float[longs.Length];
        FloatConversions.Int64ToSingle(longs, fromLongs);
        for (int i = 0; i < longs.Length; i++) Assert.Equal((float)longs[i], fromLongs[i]);

        int[] ints = [0, -1, int.MaxValue, int.MinValue, (1 << 24) + 1];
        var fromInts = new float[ints.Length];
        FloatConversions.Int32ToSingle(ints, fromInts);
        for (int i = 0; i < ints.Length; i++) Assert.Equal((float)ints[i], fromInts[i]);

        short[] shorts = [0, -1, short.MaxValue, short.MinValue];
        var fromShorts = new float[shorts.Length];
        FloatConversions.Int16ToSingle(shorts, fromShorts);
        for (int i = 0; i < shorts.Length; i++) Assert.Equal(shorts[i], fromShorts[i]);

        sbyte[] sbytes = [0, -1, sbyte.MaxValue, sbyte.MinValue];
        var fromSBytes = new float[sbytes.Length];
        FloatConversions.SByteToSingle(sbytes, fromSBytes);
        for (int i = 0; i < sbytes.Length; i++) Assert.Equal(sbytes[i], fromSBytes[i]);

        byte[] bytes = [0, 1, 2, 255];
        var fromBytes = new float[bytes.Length];
        FloatConversions.ByteToSingle(bytes, fromBytes);
        Assert.Equal([0f, 1f, 2f, 255f], fromBytes);
        FloatConversions.BoolToSingle(bytes, fromBytes);
        Assert.Equal([0f, 1f, 1f, 1f], fromBytes);
    }

    [Fact]
    public void ShortDestination_Throws()
    {
        Assert.Throws<ArgumentException>(() => FloatConversions.Bf16ToSingle(new ushort[4], new float[3]));
        Assert.Throws<ArgumentException>(() => FloatConversions.SingleToHalf(new float[4], new ushort[3]));
    }
}
