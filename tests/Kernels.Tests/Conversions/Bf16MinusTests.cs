using System.Numerics.Tensors;
using Xunit;

namespace Weld.Kernels.Tests.Conversions;

/// <summary>
/// <see cref="FloatConversions.Bf16ToSingleMinus"/> (the loader's task-vector decode) against a scalar reference written
/// from the definitions (bf16 bits shifted into the top half of a float32, then one float32 subtraction), and against
/// the two passes it replaces (widen, then <see cref="TensorPrimitives.Subtract(ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float})"/>)
/// bit for bit, NaN payloads included.
/// </summary>
public sealed class Bf16MinusTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(33)]
    [InlineData(65)]
    [InlineData(1000)]
    [InlineData(65536 + 13)] // every bf16 pattern (NaNs, ±Inf, subnormals, ±0) and an odd tail
    public void Decoding_minus_a_baseline_matches_the_scalar_reference_and_the_two_pass_path(int length)
    {
        var random = new System.Random(length + 17);
        var source = new ushort[length];
        var baseline = new float[length];
        for (int i = 0; i < length; i++)
        {
            source[i] = length > 65536 && i < 65536 ? (ushort)i : (ushort)random.Next(65536);
            baseline[i] = (i % 97) switch
            {
                0 => float.NaN,
                1 => float.PositiveInfinity,
                2 => float.NegativeInfinity,
                3 => -0f,
                4 => BitConverter.UInt32BitsToSingle((uint)random.Next(1, 1 << 23)), // subnormal
                5 => BitConverter.UInt32BitsToSingle(0x7FA0_0001u), // signalling NaN
                _ => (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-20, 20))),
            };
        }

        var fused = new float[length];
        FloatConversions.Bf16ToSingleMinus(source, baseline, fused);

        var reference = new float[length];
        for (int i = 0; i < length; i++)
            reference[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16) - baseline[i];
        BitAssert.Equal(reference, fused, $"length {length} (scalar reference)");

        var twoPass = new float[length];
        FloatConversions.Bf16ToSingle(source, twoPass);
        TensorPrimitives.Subtract(twoPass, baseline, twoPass);
        BitAssert.Identical(twoPass, fused, $"length {length} (widen, then subtract)");
    }

    [Fact]
    public void A_short_baseline_or_destination_is_refused()
    {
        Assert.Throws<ArgumentException>(() => FloatConversions.Bf16ToSingleMinus(new ushort[4], new float[3], new float[4]));
        Assert.Throws<ArgumentException>(() => FloatConversions.Bf16ToSingleMinus(new ushort[4], new float[4], new float[3]));
    }
}
