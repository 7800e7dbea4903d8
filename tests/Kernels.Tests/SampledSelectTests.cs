using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// The sampled bracket select must answer exactly what the radix select answers (key, counts, per-chunk ties),
/// and be taken on ordinary data; where it cannot bracket the rank it must decline, never guess.
/// </summary>
public class SampledSelectTests
{
    private const int Length = SampledMagnitudeSelect.MinimumLength + 54_321; // odd last chunk

    public static TheoryData<string> Distributions => new() { "normal", "bf16-ties", "sorted", "mostly-zero", "specials", "few-keys" };

    private static float[] Make(string kind, System.Random random)
    {
        var values = new float[Length];
        for (int i = 0; i < Length; i++)
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            values[i] = (float)(0.02 * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        switch (kind)
        {
            case "bf16-ties":
                for (int i = 0; i < Length; i++)
                    values[i] = FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(values[i]));
                break;
            case "few-keys":
                // 5,000 neighbouring floats, each many times: every bracket is narrow enough to be counted per key.
                for (int i = 0; i < Length; i++)
                    values[i] = BitConverter.Int32BitsToSingle(0x3C000000 + random.Next(5000)) * (random.Next(2) == 0 ? 1 : -1);
                break;
            case "sorted":
                Array.Sort(values, (a, b) => MathF.Abs(a).CompareTo(MathF.Abs(b)));
                break;
            case "mostly-zero":
                for (int i = 0; i < Length; i++)
                    if (random.Next(10) < 7) values[i] = i % 2 == 0 ? 0f : -0f;
                break;
            case "specials":
                for (int i = 0; i < 5000; i++)
                    values[random.Next(Length)] = (i % 3) switch { 0 => float.NaN, 1 => float.PositiveInfinity, _ => float.NegativeInfinity };
                break;
        }
        return values;
    }

    [Theory]
    [MemberData(nameof(Distributions))]
    public void Sampled_select_equals_radix_select_at_every_rank(string kind)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = Make(kind, random);
        var options = new ParallelOptions { MaxDegreeOfParallelism = -1 };
        int chunks = ChunkedParallel.ChunkCount(Length);
        long[] ranks = [0, 1, Length / 100, Length / 3, Length / 2, (long)(Length * 0.7), Length - 2, Length - 1, random.NextInt64(Length)];
        int taken = 0;
        {
            foreach (long rank in ranks)
            {
                var expectedEqual = new int[chunks];
                var actualEqual = new int[chunks];
                MagnitudeRank expected = MagnitudeSelect.SelectByRadix(values, rank, options, expectedEqual);
                if (!SampledMagnitudeSelect.TrySelect(values, rank, options, actualEqual, out MagnitudeRank actual))
                {
                    Assert.All(actualEqual, e => Assert.Equal(0, e)); // declined: wrote nothing
                    continue;
                }
                taken++;
                string context = $"seed {seed}, {kind}, rank {rank}";
                Assert.True(expected == actual, $"{context}: sampled {actual}, radix {expected}");
                Assert.True(expectedEqual.AsSpan().SequenceEqual(actualEqual), $"{context}: per-chunk tie counts differ");
            }
        }
        // Ordinary data must take the sampled path at most ranks (it would be dead code otherwise).
        if (kind is "normal" or "bf16-ties" or "specials" or "few-keys")
            Assert.True(taken >= ranks.Length - 1, $"seed {seed}, {kind}: sampled path taken for only {taken} of {ranks.Length} ranks");
    }

    [Fact]
    public void KeepTopK_on_a_large_tensor_matches_the_stable_sort_reference()
    {
        int seed = TestData.NewSeed();
        float[] values = Make("bf16-ties", new System.Random(seed));
        int[] descending = ScalarReference.DescendingOrder(values);
        var kernels = new CpuKernels();
        foreach (long k in new long[] { Length / 5, Length / 2 + 7 })
        {
            (float[] expected, TopKSelection expectedSelection) = ScalarReference.TopK(values, descending, k);
            float[] actual = (float[])values.Clone();
            TopKSelection selection = kernels.KeepTopK(actual, k);
            BitAssert.Identical(expected, actual, $"seed {seed}, k {k}");
            Assert.Equal(expectedSelection.KeptAboveThreshold, selection.KeptAboveThreshold);
            Assert.Equal(expectedSelection.KeptAtThreshold, selection.KeptAtThreshold);
        }
    }

    [Fact]
    public void All_equal_keys_are_declined_to_the_radix_select()
    {
        var values = new float[Length];
        Array.Fill(values, 0.5f);
        var equal = new int[ChunkedParallel.ChunkCount(Length)];
        Assert.False(SampledMagnitudeSelect.TrySelect(values, Length / 2, new ParallelOptions(), equal, out _));
    }
}
