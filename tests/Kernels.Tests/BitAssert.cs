using Xunit.Sdk;

namespace Weld.Kernels.Tests;

/// <summary>Exact comparisons of float results by bit pattern (any NaN matches any NaN: payloads are not part of the contract).</summary>
internal static class BitAssert
{
    /// <summary>Fails with the first differing index, both values as bits, and <paramref name="context"/> (carry the seed).</summary>
    public static void Equal(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string context)
    {
        if (expected.Length != actual.Length)
            throw new XunitException($"{context}: length {actual.Length}, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            if (!Same(expected[i], actual[i]))
                throw new XunitException(
                    $"{context}: element {i} is {actual[i]:R} (0x{Bits(actual[i]):X8}), expected {expected[i]:R} (0x{Bits(expected[i]):X8})");
        }
    }

    /// <summary>Exact bit equality, NaN payloads included (for same-code determinism checks).</summary>
    public static void Identical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string context)
    {
        if (expected.Length != actual.Length)
            throw new XunitException($"{context}: length {actual.Length}, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            if (Bits(expected[i]) != Bits(actual[i]))
                throw new XunitException($"{context}: element {i} is 0x{Bits(actual[i]):X8}, expected 0x{Bits(expected[i]):X8}");
        }
    }

    /// <summary>
    /// Within <paramref name="ulps"/> float32 ulps of <paramref name="expected"/>, same sign; NaN where it is NaN, ±∞ and
    /// zeros exactly.
    /// </summary>
    public static void WithinUlps(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, int ulps, string context)
    {
        if (expected.Length != actual.Length)
            throw new XunitException($"{context}: length {actual.Length}, expected {expected.Length}");
        for (int i = 0; i < expected.Length; i++)
        {
            bool close = float.IsNaN(expected[i]) ? float.IsNaN(actual[i])
                : !float.IsFinite(expected[i]) || expected[i] == 0f ? Same(expected[i], actual[i])
                : Math.Sign(expected[i]) == Math.Sign(actual[i]) && Math.Abs((long)Bits(expected[i]) - Bits(actual[i])) <= ulps;
            if (!close)
                throw new XunitException($"{context}: element {i} is {actual[i]:R}, expected {expected[i]:R} within {ulps} ulps");
        }
    }

    /// <summary>Same bits, or both NaN.</summary>
    public static bool Same(float expected, float actual) =>
        Bits(expected) == Bits(actual) || (float.IsNaN(expected) && float.IsNaN(actual));

    /// <summary>Same bits, or both NaN (float64: a sum over NaN inputs keeps whichever payload its order meets first).</summary>
    public static bool Same(double expected, double actual) =>
        BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual) || (double.IsNaN(expected) && double.IsNaN(actual));

    public static uint Bits(float value) => (uint)BitConverter.SingleToInt32Bits(value);
}
