namespace Weld.Kernels.Tests;

/// <summary>Random inputs for kernel tests: plain, tie-heavy, and with NaN / ±∞ sprinkled in.</summary>
internal static class TestData
{
    /// <summary>Sizes around the edges of the 64K chunking (0, 1, tails, more than one chunk).</summary>
    public static readonly int[] Sizes = [0, 1, 7, 65537, 200003];

    /// <summary>A fresh seed, to be printed in every assertion message.</summary>
    public static int NewSeed() => System.Random.Shared.Next();

    /// <summary>Normal-ish floats with a wide spread of magnitudes.</summary>
    public static float[] Plain(System.Random random, int length)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-20, 8)));
        return values;
    }

    /// <summary>
    /// Values drawn from a handful of bf16-rounded magnitudes with random signs plus ±0, so equal magnitudes
    /// are everywhere (like deltas of bf16 checkpoints).
    /// </summary>
    public static float[] TieHeavy(System.Random random, int length)
    {
        var palette = new float[5];
        for (int p = 0; p < palette.Length; p++)
            palette[p] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits((float)random.NextDouble() * 0.01f) & unchecked((int)0xFFFF0000));
        var values = new float[length];
        for (int i = 0; i < length; i++)
        {
            int pick = random.Next(palette.Length + 2);
            values[i] = pick switch
            {
                5 => 0f,
                6 => -0f,
                _ => random.Next(2) == 0 ? palette[pick] : -palette[pick],
            };
        }

        return values;
    }

    /// <summary>Overwrites a few elements with NaN (both signs, two payloads), +∞ and −∞.</summary>
    public static float[] WithSpecials(System.Random random, float[] values)
    {
        float[] specials =
        [
            float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7FC01234), float.PositiveInfinity,
            float.NegativeInfinity, float.MaxValue, -float.Epsilon,
        ];
        int count = values.Length / 50 + Math.Min(values.Length, 3);
        for (int j = 0; j < count; j++)
            values[random.Next(values.Length)] = specials[random.Next(specials.Length)];
        return values;
    }

    /// <summary>Every kind of input for one size: plain, tie-heavy, plain with specials, tie-heavy with specials.</summary>
    public static IEnumerable<(string Kind, float[] Values)> Kinds(System.Random random, int length)
    {
        yield return ("plain", Plain(random, length));
        yield return ("ties", TieHeavy(random, length));
        yield return ("plain+specials", WithSpecials(random, Plain(random, length)));
        yield return ("ties+specials", WithSpecials(random, TieHeavy(random, length)));
    }
}
