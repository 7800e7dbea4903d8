using Xunit;
using Xunit.Sdk;
using Reference = Weld.Kernels.FloatConversions;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU storage conversions against <see cref="Reference"/>, bit for bit, NaN payloads included: every 16-bit
/// pattern and every fp8 byte for the widening ones; for the narrowing ones, a sweep over all exponents, random bit
/// patterns, values on and next to each format's rounding ties, subnormals, the overflow thresholds and NaNs.
/// </summary>
public sealed class FloatConversionsTests
{
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Widening_bf16_and_fp16_match_for_every_16_bit_pattern(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        // All 65536 patterns (NaNs, subnormals, ±Inf) plus an odd tail; at an offset too (unaligned host span).
        var source = new ushort[65536 + 3];
        for (int i = 0; i < source.Length; i++)
            source[i] = (ushort)i;
        foreach (int offset in new[] { 0, 1 })
        {
            ReadOnlySpan<ushort> input = source.AsSpan(offset);
            var expected = new float[input.Length];
            var actual = new float[input.Length];
            Reference.Bf16ToSingle(input, expected);
            gpu.Bf16ToSingle(input, actual);
            BitAssert.Identical(expected, actual, $"{shape} bf16 offset {offset}");
            Reference.HalfToSingle(input, expected);
            gpu.HalfToSingle(input, actual);
            BitAssert.Identical(expected, actual, $"{shape} fp16 offset {offset}");
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Widening_fp8_matches_for_every_byte(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        var source = new byte[256 + 5];
        for (int i = 0; i < source.Length; i++)
            source[i] = (byte)i;
        var expected = new float[source.Length];
        var actual = new float[source.Length];
        Reference.Fp8E4M3ToSingle(source, expected);
        gpu.Fp8E4M3ToSingle(source, actual);
        BitAssert.Identical(expected, actual, $"{shape} e4m3");
        Reference.Fp8E5M2ToSingle(source, expected);
        gpu.Fp8E5M2ToSingle(source, actual);
        BitAssert.Identical(expected, actual, $"{shape} e5m2");
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Narrowing_matches_bit_for_bit(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[] values = NarrowingInputs(new System.Random(seed));
        string context = $"{shape} seed {seed}";

        var expected16 = new ushort[values.Length];
        var actual16 = new ushort[values.Length];
        Reference.SingleToBf16(values, expected16);
        gpu.SingleToBf16(values, actual16);
        AssertSameBits(expected16, actual16, values, context + " bf16");
        Reference.SingleToHalf(values, expected16);
        gpu.SingleToHalf(values, actual16);
        AssertSameBits(expected16, actual16, values, context + " fp16");

        var expected8 = new byte[values.Length];
        var actual8 = new byte[values.Length];
        Reference.SingleToFp8E4M3(values, expected8);
        gpu.SingleToFp8E4M3(values, actual8);
        AssertSameBits(expected8, actual8, values, context + " e4m3");
        Reference.SingleToFp8E5M2(values, expected8);
        gpu.SingleToFp8E5M2(values, actual8);
        AssertSameBits(expected8, actual8, values, context + " e5m2");
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Empty_inputs_and_short_destinations(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        gpu.SingleToBf16([], Span<ushort>.Empty);
        gpu.Bf16ToSingle([], Span<float>.Empty);
        Assert.Throws<ArgumentException>(() => gpu.SingleToHalf(new float[3], new ushort[2]));
        Assert.Throws<ArgumentException>(() => gpu.Fp8E4M3ToSingle(new byte[3], new float[2]));
        // A longer destination is fine: only the first source.Length elements are written.
        var destination = new float[] { 5f, 5f, 5f };
        gpu.Bf16ToSingle([0x3F80], destination);
        Assert.Equal([1f, 5f, 5f], destination);
    }

    /// <summary>Inputs for the narrowing conversions (see the class summary); a few tens of thousands.</summary>
    private static float[] NarrowingInputs(System.Random random)
    {
        var values = new List<float>();
        // Every exponent and many mantissas, both signs: a stride through all 2^32 bit patterns.
        for (long bits = 0; bits <= uint.MaxValue; bits += 65_537 * 3)
            values.Add(BitConverter.UInt32BitsToSingle((uint)bits));
        // Ties and their neighbours for each target: the dropped bits exactly half (even and odd kept LSB), ± 1 ulp.
        foreach (int dropped in new[] { 16, 13, 20, 21 })
        {
            for (int j = 0; j < 2000; j++)
            {
                uint bits = (uint)random.Next() ^ ((uint)random.Next(2) << 31);
                uint tie = (bits & ~((1u << dropped) - 1)) | (1u << (dropped - 1));
                values.Add(BitConverter.UInt32BitsToSingle(tie));
                values.Add(BitConverter.UInt32BitsToSingle(tie - 1));
                values.Add(BitConverter.UInt32BitsToSingle(tie + 1));
            }
        }
        // Small magnitudes where the targets are subnormal (fp16 below 2^-14, fp8 below 2^-6 / 2^-14), float subnormals.
        for (int j = 0; j < 4000; j++)
        {
            float magnitude = (float)(random.NextDouble() * Math.Pow(2, -random.Next(5, 30)));
            values.Add(random.Next(2) == 0 ? magnitude : -magnitude);
            values.Add(BitConverter.UInt32BitsToSingle((uint)random.Next(1, 1 << 23)));
        }
        // Target subnormal ties: odd multiples of half the smallest subnormal step.
        for (int step = 1; step < 64; step += 2)
        {
            values.Add(step * MathF.Pow(2, -25));  // fp16
            values.Add(step * MathF.Pow(2, -10));  // e4m3 (subnormal step 2^-9)
            values.Add(step * MathF.Pow(2, -17));  // e5m2 (subnormal step 2^-16)
        }
        // Overflow thresholds and specials.
        float[] edges =
        [
            0f, -0f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity,
            65504f, 65519f, 65519.996f, 65520f, 65536f, 448f, 464f, 464.00003f, 479.99997f, 480f, 57344f, 61439.996f, 61440f,
            BitConverter.UInt32BitsToSingle(0x7F7F8000), BitConverter.UInt32BitsToSingle(0x7F7F7FFF),
            float.NaN, -float.NaN, BitConverter.UInt32BitsToSingle(0x7F800001), BitConverter.UInt32BitsToSingle(0xFF800001),
            BitConverter.UInt32BitsToSingle(0x7FC01234), BitConverter.UInt32BitsToSingle(0x7F80E000), BitConverter.UInt32BitsToSingle(0x7FFFFFFF),
        ];
        values.AddRange(edges);
        for (int j = 0; j < 4000; j++)
            values.Add(BitConverter.Int32BitsToSingle(random.Next() ^ (random.Next(2) << 31)));
        return [.. values];
    }

    private static void AssertSameBits<T>(T[] expected, T[] actual, float[] input, string context) where T : IEquatable<T>
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (!expected[i].Equals(actual[i]))
                throw new XunitException($"{context}: element {i} (input 0x{BitAssert.Bits(input[i]):X8}) is 0x{actual[i]:X}, expected 0x{expected[i]:X}");
        }
    }
}
