using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// The steps of the sampled magnitude select and of the mask, each against a scalar reference: the sample's radix sort,
/// the one-key partition's counts (both vector widths), the select inside a gathered bracket, and the mask of chunks
/// where a tie boundary falls (split into SIMD segments).
/// </summary>
public class SelectionStepsTests
{
    [Fact]
    public void Key_radix_sort_gives_the_comparison_sort_order()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int size in new[] { 0, 1, 2, 31, 1000, SampledMagnitudeSelect.SampleSize })
        {
            int[][] inputs =
            [
                Enumerable.Range(0, size).Select(_ => random.Next()).ToArray(), // all 31 bits vary
                Enumerable.Range(0, size).Select(_ => 0x3A000000 + random.Next(1 << 18)).ToArray(), // top digit shared: skipped
                Enumerable.Range(0, size).Select(_ => random.Next(3) * 0x00200000).ToArray(), // only the top digit varies
                Enumerable.Repeat(0x7F800000, size).ToArray(), // one key: every pass skipped
                Enumerable.Range(0, size).Select(i => size - i).ToArray(), // descending
            ];
            foreach (int[] keys in inputs)
            {
                int[] expected = (int[])keys.Clone();
                Array.Sort(expected);
                int[] actual = (int[])keys.Clone();
                KeyRadixSort.Sort(actual, new int[size]);
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"seed {seed}, n {size}");
            }
        }
    }

    [Fact]
    public void Key_radix_sort_rejects_negative_keys_and_short_scratch()
    {
        Assert.Throws<ArgumentException>(() => KeyRadixSort.Sort(new[] { 3, -1 }, new int[2]));
        Assert.Throws<ArgumentException>(() => KeyRadixSort.Sort(new[] { 3, 1 }, new int[1]));
    }

    /// <summary>The one-key partition counts keys below and at the key, with 512-bit and 256-bit bodies, as a scalar count does.</summary>
    [Fact]
    public void One_key_partition_counts_of_both_vector_widths_equal_a_scalar_count()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int size in new[] { 0, 1, 15, 16, 17, 31, 1031 })
        {
            foreach ((string kind, float[] values) in TestData.Kinds(random, size))
            {
                var keys = values.Select(v => (int)ScalarReference.Key(v)).ToList();
                keys.AddRange([0, 0x7F800000, 0x7FFFFFFF, 12345]);
                foreach (int key in keys.Distinct().Take(40))
                {
                    long below = values.Count(v => (int)ScalarReference.Key(v) < key);
                    int equal = values.Count(v => (int)ScalarReference.Key(v) == key);
                    foreach (bool wide in new[] { true, false })
                    {
                        long actualBelow = SampledMagnitudeSelect.CountBelowAndEqual(values, key, wide, out int actualEqual);
                        Assert.True(below == actualBelow && equal == actualEqual,
                            $"seed {seed}, {kind}, n {size}, key 0x{key:X8}, {(wide ? 512 : 256)}-bit: {actualBelow}/{actualEqual}, expected {below}/{equal}");
                    }
                }
            }
        }
    }

    /// <summary>
    /// The select inside a bracket, over keys gathered in per-chunk slots (uneven fill, empty chunks), equals sorting the
    /// gathered keys: one-key brackets, narrow ones of heavily tied keys, and widths around the 11-bit digits.
    /// </summary>
    [Fact]
    public void Bracket_select_equals_sorting_the_gathered_keys()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        (int Low, int High)[] brackets =
        [
            (0x3A800000, 0x3A800000), (0x3A800000, 0x3A800001), (0x3A800000, 0x3A800000 + 2047), (0x3A800000, 0x3A800000 + 2048),
            (0x3A7FFFFF, 0x3A7FFFFF + (1 << 20)), (0x3A000000, 0x3A000000 + (1 << 22) + 5), (0, int.MaxValue), (0x7F800000, 0x7FFFFFFF),
        ];
        foreach ((int low, int high) in brackets)
        {
            foreach (int distinct in new[] { 1, 3, 1000 })
            {
                // A palette of keys inside the bracket (always its two ends), drawn with heavy repetition.
                int[] palette = Enumerable.Range(0, distinct).Select(p => p switch
                {
                    0 => low,
                    1 => high,
                    _ => low + (int)(random.NextInt64((long)high - low + 1)),
                }).ToArray();
                int chunks = 1 + random.Next(6), capacity = 700;
                var band = new int[chunks * capacity];
                var inBand = new int[chunks];
                var all = new List<int>();
                for (int chunk = 0; chunk < chunks; chunk++)
                {
                    inBand[chunk] = chunk == 1 ? 0 : random.Next(capacity + 1);
                    for (int i = 0; i < inBand[chunk]; i++)
                    {
                        int key = palette[random.Next(palette.Length)];
                        band[chunk * capacity + i] = key;
                        all.Add(key);
                    }
                }
                if (all.Count == 0) continue;
                all.Sort();
                foreach (long rank in new long[] { 0, all.Count - 1, all.Count / 2, random.Next(all.Count) })
                {
                    int expectedKey = all[(int)rank];
                    var equal = new int[chunks];
                    MagnitudeRank actual = BracketSelect.Select(band, capacity, inBand, chunks, low, high, rank, equal);
                    string context = $"seed {seed}, bracket [0x{low:X8}, 0x{high:X8}], {distinct} keys, rank {rank}";
                    Assert.True(new MagnitudeRank(expectedKey, all.Count(k => k < expectedKey), all.Count(k => k == expectedKey)) == actual,
                        $"{context}: {actual}, expected key 0x{expectedKey:X8}");
                    for (int chunk = 0; chunk < chunks; chunk++)
                        Assert.True(band.AsSpan(chunk * capacity, inBand[chunk]).Count(expectedKey) == equal[chunk], $"{context}: chunk {chunk} tie count");
                }
            }
        }
    }

    /// <summary>
    /// The mask where tie boundaries fall inside chunks (split into SIMD segments) against deciding element by element:
    /// tie drop ranges starting and ending anywhere, lower and upper cut together, both cuts on one key.
    /// </summary>
    [Fact]
    public void Mask_with_tie_boundaries_inside_chunks_equals_the_elementwise_decision()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int length = 3 * ChunkedParallel.ChunkLength + 1234;
        float[] values = TestData.TieHeavy(random, length);
        int[] keys = values.Select(v => (int)ScalarReference.Key(v)).Distinct().Order().ToArray();
        var options = new ParallelOptions { MaxDegreeOfParallelism = -1 };
        for (int round = 0; round < 40; round++)
        {
            MagnitudeCut? lower = round % 4 == 3 ? null : RandomCut(keys[random.Next(keys.Length)]);
            MagnitudeCut? upper = round % 4 == 2 ? null : round % 5 == 0 && lower is { } same ? RandomCut(same.Key) : RandomCut(keys[random.Next(keys.Length)]);
            float[] expected = ElementwiseMask(values, lower, upper);
            float[] actual = (float[])values.Clone();
            MagnitudeMask.Apply(actual, lower, upper, options);
            BitAssert.Identical(expected, actual, $"seed {seed}, round {round}, lower {Describe(lower)}, upper {Describe(upper)}");
        }

        MagnitudeCut RandomCut(int key)
        {
            int[] equalPerChunk = new int[ChunkedParallel.ChunkCount(length)];
            for (int i = 0; i < length; i++)
                if ((int)ScalarReference.Key(values[i]) == key)
                    equalPerChunk[i / ChunkedParallel.ChunkLength]++;
            long ties = equalPerChunk.Sum();
            long start = random.NextInt64(ties + 2), end = random.Next(4) == 0 ? long.MaxValue : start + random.NextInt64(ties + 2 - start);
            return new MagnitudeCut(key, start, end, equalPerChunk);
        }

        static string Describe(MagnitudeCut? cut) => cut is { } c ? $"key 0x{c.Key:X8} ties [{c.TieDropStart}, {c.TieDropEnd})" : "none";
    }

    /// <summary>The mask's definition, one element at a time: beyond a cut's key dropped, ties dropped by tie index.</summary>
    private static float[] ElementwiseMask(float[] values, MagnitudeCut? lower, MagnitudeCut? upper)
    {
        float[] result = (float[])values.Clone();
        long lowerTie = 0, upperTie = 0;
        for (int i = 0; i < result.Length; i++)
        {
            int key = (int)ScalarReference.Key(result[i]);
            bool keep = true;
            if (lower is { } l)
            {
                if (key < l.Key) keep = false;
                else if (key == l.Key) keep = !(lowerTie >= l.TieDropStart && lowerTie < l.TieDropEnd);
                if (key == l.Key) lowerTie++;
            }
            if (upper is { } u)
            {
                if (key > u.Key) keep = false;
                else if (key == u.Key) keep &= !(upperTie >= u.TieDropStart && upperTie < u.TieDropEnd);
                if (key == u.Key) upperTie++;
            }
            if (!keep) result[i] = 0f;
        }
        return result;
    }

    [Fact]
    public void Index_of_a_tie_equals_a_scalar_search()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int size in new[] { 0, 1, 7, 8, 9, 100, 1031 })
        {
            float[] values = TestData.TieHeavy(random, size);
            foreach (int key in values.Select(v => (int)ScalarReference.Key(v)).Distinct().Append(12345))
            {
                int[] positions = Enumerable.Range(0, size).Where(i => (int)ScalarReference.Key(values[i]) == key).ToArray();
                foreach (long nth in new long[] { 0, 1, positions.Length / 2, positions.Length - 1, positions.Length, positions.Length + 5, long.MaxValue })
                {
                    if (nth < 0) continue;
                    int expected = nth < positions.Length ? positions[nth] : size;
                    int actual = MagnitudeMask.IndexOfTie(values, key, nth);
                    Assert.True(expected == actual, $"seed {seed}, n {size}, key 0x{key:X8}, tie {nth}: {actual}, expected {expected}");
                }
            }
        }
    }
}
