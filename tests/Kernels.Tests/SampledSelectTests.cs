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

    public static TheoryData<string> Distributions => new() { "normal", "bf16-ties", "sorted", "mostly-zero", "specials", "few-keys", "bf16-task-vector" };

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
            case "bf16-task-vector":
                // bf16(b + δ) − bf16(b), as the bench models' task vectors: a few dozen distinct magnitudes, each held by
                // many elements, so most brackets are one key (counted, nothing gathered) or a few keys ~2^20 apart.
                for (int i = 0; i < Length; i++)
                {
                    float b = 0.035f * (2 * random.NextSingle() - 1);
                    float tuned = b + 1.7e-3f * (2 * random.NextSingle() - 1);
                    values[i] = FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(tuned)) - FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(b));
                }
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
        if (kind is "normal" or "bf16-ties" or "specials" or "few-keys" or "bf16-task-vector")
            Assert.True(taken >= ranks.Length - 1, $"seed {seed}, {kind}: sampled path taken for only {taken} of {ranks.Length} ranks");
    }

    [Theory]
    [MemberData(nameof(Distributions))]
    public void Sampled_pair_equals_two_radix_selects(string kind)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = Make(kind, random);
        var options = new ParallelOptions { MaxDegreeOfParallelism = -1 };
        int chunks = ChunkedParallel.ChunkCount(Length);
        (long Lower, long Upper)[] pairs =
        [
            ((long)(Length * 0.69) - 1, Length - Length / 100), (0, Length - 1), (Length / 2, Length / 2), (Length / 2 + 3, Length / 3),
            (random.NextInt64(Length), random.NextInt64(Length)),
        ];
        int taken = 0;
        foreach ((long lowerRank, long upperRank) in pairs)
        {
            var expectedLowerEqual = new int[chunks];
            var expectedUpperEqual = new int[chunks];
            MagnitudeRank expectedLower = MagnitudeSelect.SelectByRadix(values, lowerRank, options, expectedLowerEqual);
            MagnitudeRank expectedUpper = MagnitudeSelect.SelectByRadix(values, upperRank, options, expectedUpperEqual);
            var lowerEqual = new int[chunks];
            var upperEqual = new int[chunks];
            bool hit = SampledMagnitudeSelect.TrySelectPair(values, lowerRank, upperRank, options, lowerEqual, upperEqual, out MagnitudeRank lower, out MagnitudeRank upper);
            string context = $"seed {seed}, {kind}, ranks {lowerRank} and {upperRank}";
            if (!hit)
            {
                Assert.True(lowerEqual.All(e => e == 0) && upperEqual.All(e => e == 0), $"{context}: declined but wrote counts");
                continue;
            }
            taken++;
            Assert.True(expectedLower == lower, $"{context}: lower {lower}, radix {expectedLower}");
            Assert.True(expectedUpper == upper, $"{context}: upper {upper}, radix {expectedUpper}");
            Assert.True(expectedLowerEqual.AsSpan().SequenceEqual(lowerEqual), $"{context}: lower per-chunk tie counts differ");
            Assert.True(expectedUpperEqual.AsSpan().SequenceEqual(upperEqual), $"{context}: upper per-chunk tie counts differ");
        }
        if (kind is "normal" or "bf16-ties" or "few-keys" or "bf16-task-vector")
            Assert.True(taken >= pairs.Length - 1, $"seed {seed}, {kind}: pair taken for only {taken} of {pairs.Length}");
    }

    [Theory]
    [InlineData("bf16-task-vector")]
    [InlineData("normal")]
    public void KeepMagnitudeBand_on_a_large_tensor_matches_the_stable_sort_reference(string kind)
    {
        int seed = TestData.NewSeed();
        float[] values = Make(kind, new System.Random(seed));
        int[] ascending = ScalarReference.AscendingOrder(values);
        var kernels = new CpuKernels();
        foreach ((long bottom, long top) in new (long, long)[] { (Length - (long)(0.3 * Length) - Length / 100, Length / 100), (Length / 2, 0), (0, Length / 5) })
        {
            float[] expected = ScalarReference.Band(values, ascending, bottom, top);
            float[] actual = (float[])values.Clone();
            kernels.KeepMagnitudeBand(actual, bottom, top);
            BitAssert.Identical(expected, actual, $"seed {seed}, {kind}, dropBottom {bottom}, dropTop {top}");
        }
    }

    [Fact]
    public void KeepTopK_on_a_large_tensor_matches_the_stable_sort_reference()
    {
        int seed = TestData.NewSeed();
        foreach (string kind in new[] { "bf16-ties", "bf16-task-vector" })
            KeepTopKMatchesReference(Make(kind, new System.Random(seed)), $"seed {seed}, {kind}");
    }

    private static void KeepTopKMatchesReference(float[] values, string context)
    {
        int[] descending = ScalarReference.DescendingOrder(values);
        var kernels = new CpuKernels();
        foreach (long k in new long[] { Length / 5, Length / 2 + 7 })
        {
            (float[] expected, TopKSelection expectedSelection) = ScalarReference.TopK(values, descending, k);
            float[] actual = (float[])values.Clone();
            TopKSelection selection = kernels.KeepTopK(actual, k);
            BitAssert.Identical(expected, actual, $"{context}, k {k}");
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
