using Weld.Kernels.Gpu;
using Xunit;
using Xunit.Sdk;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>The software FMA behind <see cref="GpuArithmetic.Fma"/> off CUDA, against the hardware FMA.</summary>
public sealed class GpuArithmeticTests
{
    [Fact]
    public void SoftwareFma_equals_FusedMultiplyAdd_bit_for_bit()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        for (int i = 0; i < 2_000_000; i++)
        {
            float a = Draw(random), b = Draw(random), c;
            // Every third case puts c near −a·b, where cancellation exposes a double rounding; every third near a
            // halfway point of a·b's float rounding.
            c = (i % 3) switch
            {
                0 => -(a * b) * (1f + (float)(random.NextDouble() - 0.5) * 1e-6f),
                1 => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(a * b) & ~0xFFF) * -1f,
                _ => Draw(random),
            };
            Check(a, b, c, seed);
        }
        float[] specials = [0f, -0f, 1f, -1f, float.Epsilon, -float.Epsilon, float.MaxValue, float.MinValue,
            float.PositiveInfinity, float.NegativeInfinity, float.NaN, 1.17549435e-38f, 3e-39f, 65504f, 1e-20f];
        foreach (float a in specials)
            foreach (float b in specials)
                foreach (float c in specials)
                    Check(a, b, c, seed);
    }

    private static float Draw(System.Random random) => (random.Next(4)) switch
    {
        0 => BitConverter.Int32BitsToSingle(random.Next()) * (random.Next(2) == 0 ? 1 : -1), // any finite/special
        1 => (float)(random.NextDouble() * 2 - 1),
        2 => (float)Math.ScaleB(random.NextDouble() + 1, random.Next(-140, 120)) * (random.Next(2) == 0 ? 1 : -1),
        _ => 1f + random.Next(1 << 12) * (1f / (1 << 23)), // products with halfway cases
    };

    private static void Check(float a, float b, float c, int seed)
    {
        float expected = MathF.FusedMultiplyAdd(a, b, c);
        float actual = GpuArithmetic.SoftwareFma(a, b, c);
        if (!BitAssert.Same(expected, actual))
            throw new XunitException(
                $"seed {seed}: fma(0x{BitAssert.Bits(a):X8}, 0x{BitAssert.Bits(b):X8}, 0x{BitAssert.Bits(c):X8}) = 0x{BitAssert.Bits(actual):X8}, expected 0x{BitAssert.Bits(expected):X8}");
    }
}
