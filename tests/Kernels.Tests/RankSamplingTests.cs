using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>DELLA's magnitude-rank sampling on the CPU against <see cref="RankSamplingScalarReference"/>, on one thread and on all.</summary>
public sealed class RankSamplingTests
{
    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SampleByMagnitudeRank_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0xA5A5A5A5u, 3);
        RankSamplingInputs.ForEach(seed, RankSamplingInputs.Layouts, (context, values, length, stride) =>
        {
            int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
            foreach ((float low, float epsilon, float single, bool divide) in RankSamplingInputs.Settings)
            {
                float[] expected = RankSamplingScalarReference.Sample(values, positions, length, low, epsilon, single, divide, key);
                float[] actual = (float[])values.Clone();
                kernels.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key);
                BitAssert.Identical(expected, actual, $"{context}, low {low}, ε {epsilon}, divide {divide}");
            }
        });
    }

    [Fact]
    public void Equal_magnitudes_are_ranked_by_position_and_NaN_ranks_highest()
    {
        // Four elements, p = 0 + (s / 3)·2·0.5 = s / 3: sorted position 0 (p = 0) is always dropped, position 3
        // (p = 1) always kept. −2 and 2 tie: the first (position 0) ranks below. NaN ranks above 2.
        var kernels = new CpuKernels(1);
        float[] values = [2f, float.NaN, -2f, 1f];
        var key = new PhiloxKey(7, 11, 0);
        kernels.SampleByMagnitudeRank(values, 4, 1, 0f, 0.5f, 0.5f, false, key);
        Assert.Equal(0f, values[3]); // smallest magnitude: p = 0
        Assert.True(float.IsNaN(values[1])); // largest: p = 1
        float[] original = [2f, float.NaN, -2f, 1f];
        Assert.Equal([1, 3, 2, 0], RankSamplingScalarReference.SortedPositions(original, 4, 1));
        float[] expected = RankSamplingScalarReference.Sample(original, [1, 3, 2, 0], 4, 0f, 0.5f, 0.5f, false, key);
        BitAssert.Identical(expected, values, "hand-made");
    }

    [Fact]
    public void A_layout_that_does_not_tile_the_values_throws()
    {
        var kernels = new CpuKernels(1);
        var key = new PhiloxKey(1, 2, 3);
        Assert.Throws<ArgumentException>(() => kernels.SampleByMagnitudeRank(new float[10], 4, 1, 0.4f, 0.1f, 0.5f, false, key));
        Assert.Throws<ArgumentException>(() => kernels.SampleByMagnitudeRank(new float[12], 4, 0, 0.4f, 0.1f, 0.5f, false, key));
        Assert.Throws<ArgumentException>(() => kernels.SampleByMagnitudeRank(new float[12], 0, 1, 0.4f, 0.1f, 0.5f, false, key));
        kernels.SampleByMagnitudeRank([], 0, 0, 0.4f, 0.1f, 0.5f, false, key); // nothing to do
    }
}

/// <summary>The radix sort of (magnitude, position) pairs gives exactly the comparison sort's order.</summary>
public sealed class RankSamplingSortTests
{
    [Theory]
    [InlineData(255, 0)]
    [InlineData(256, 0)]
    [InlineData(4096, 0)]
    [InlineData(4096, 3)]
    [InlineData(8191, 1)]
    [InlineData(4096, 2)]
    public void Radix_order_equals_Array_Sort(int length, int kind)
    {
        var random = new System.Random(length * 7 + kind);
        var order = new ulong[2 * length];
        for (int r = 0; r < length; r++)
        {
            float v = kind switch
            {
                0 => (float)(random.NextDouble() - 0.5) * 0.02f, // ordinary weights: many exponents
                1 => random.Next(4) * 0.5f,                       // heavy ties
                2 => 1.5f,                                         // every key equal: every pass skipped
                _ => r % 5 == 0 ? float.NaN : (r % 7 == 0 ? float.PositiveInfinity : (float)random.NextDouble()),
            };
            uint magnitude = System.BitConverter.SingleToUInt32Bits(v) & 0x7FFFFFFFu;
            order[r] = ((ulong)magnitude << 32) | (uint)r;
        }
        ulong[] expected = order[..length];
        System.Array.Sort(expected);
        MagnitudeRankSampling.SortByKey(order, length);
        Assert.Equal(expected, order[..length]);
    }
}

/// <summary>
/// The counting-sort path of the CPU's rank sampling (fibers of at least <see cref="MagnitudeRankSampling.BucketMinimum"/>
/// elements, no inverse-probability rescale: only the draws between p(0) and p(n − 1) take a rank) against
/// <see cref="RankSamplingScalarReference"/>: odd lengths, strides, tensor offsets that start inside a Philox block, and
/// data that puts one key per bucket (bf16 task vectors), many keys per bucket (float32), everything into one bucket
/// (a huge outlier, NaN or +∞ on top), or only equal keys.
/// </summary>
public sealed class RankSamplingBucketTests
{
    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    private static IEnumerable<(string Kind, float[] Values)> Kinds(System.Random random, int count)
    {
        foreach (var kind in TestData.Kinds(random, count))
            yield return kind;
        yield return ("bf16 task vector", Bf16Deltas(random, count));
        yield return ("float32 normal", Normal(random, count));
        float[] outlier = Normal(random, count);
        outlier[random.Next(count)] = 1e30f; // every other key more than 2048 digits below: one bucket
        yield return ("one huge outlier", outlier);
        float[] nanOnTop = Bf16Deltas(random, count);
        nanOnTop[random.Next(count)] = float.NaN;
        nanOnTop[random.Next(count)] = float.NegativeInfinity;
        yield return ("bf16 + NaN + -inf", nanOnTop);
        // Spread keys with one run of equal magnitudes: buckets of one element but for a crowded one, so the few draws it
        // leaves open are counted in place (equal keys ranked by position) rather than placed.
        float[] spreadWithTies = Normal(random, count);
        for (int i = count / 3; i < count / 3 + 24 && i < count; i++)
            spreadWithTies[i] = random.Next(2) == 0 ? 7e-4f : -7e-4f;
        yield return ("float32 normal + a run of ties", spreadWithTies);
        // A run of ties beside elements of its digit's own key: those sit in the one-key bucket just below the run's
        // (mixed) bucket, so counting the run's places must start above that key. Key bits 15-17 of the run are zero, so
        // its digit's own key (the key with the low bits cleared) is the same for every digit width of these lengths.
        float[] tiesAndOwnKey = Normal(random, count);
        float tie = BitConverter.UInt32BitsToSingle(0x3A340123u), ownKey = BitConverter.UInt32BitsToSingle(0x3A340000u);
        for (int i = count / 3; i < count / 3 + 24 && i < count; i++)
            tiesAndOwnKey[i] = random.Next(2) == 0 ? tie : -tie;
        for (int i = count / 2; i < count / 2 + 16 && i < count; i++)
            tiesAndOwnKey[i] = random.Next(2) == 0 ? ownKey : -ownKey;
        yield return ("float32 normal + a run of ties + its digit's own key", tiesAndOwnKey);
        // bf16 deltas with crowds far below the largest: exact zeros (bucket 0, one key) and deltas scaled 2^-20 (more
        // than eight binades down: all in bucket 1, mixed), so both low buckets are crowded.
        float[] crowdedLow = Bf16Deltas(random, count);
        for (int i = 0; i < count; i++)
            crowdedLow[i] = random.Next(8) switch { 0 => 0f, 1 or 2 => MathF.ScaleB(crowdedLow[i], -20), _ => crowdedLow[i] };
        yield return ("bf16 + zeros + deltas 2^-20 down", crowdedLow);
        var equal = new float[count];
        for (int i = 0; i < count; i++)
            equal[i] = random.Next(2) == 0 ? 0.25f : -0.25f;
        yield return ("all equal magnitudes", equal);
        var zerosAndTiny = new float[count];
        for (int i = 0; i < count; i++)
            zerosAndTiny[i] = random.Next(3) switch { 0 => 0f, 1 => -float.Epsilon * random.Next(1, 4), _ => random.Next(1, 5) * 1e-3f };
        yield return ("zeros, subnormals and a few keys", zerosAndTiny);
    }

    /// <summary>bf16(θ + noise) − bf16(θ): few significant bits, many equal magnitudes, some exact zeros.</summary>
    private static float[] Bf16Deltas(System.Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
        {
            float theta = Bf16((float)(random.NextDouble() * 0.07 - 0.035));
            values[i] = Bf16(theta + (float)(random.NextDouble() * 3.4e-3 - 1.7e-3)) - theta;
        }
        return values;
    }

    private static float Bf16(float x) =>
        BitConverter.UInt32BitsToSingle((BitConverter.SingleToUInt32Bits(x) + 0x7FFFu + ((BitConverter.SingleToUInt32Bits(x) >> 16) & 1)) & 0xFFFF0000u);

    private static float[] Normal(System.Random random, int count)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()) * 1e-3);
        return values;
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void Counting_sort_path_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0x5A5A5A5Au, 1);
        (int Outer, int Length, int Stride)[] layouts = [(1, 512, 1), (3, 2048, 1), (2, 1021, 3), (1, 4099, 1), (1, 8192, 1), (2, 600, 2)];
        (float Low, float Epsilon)[] settings = [(0.2f, 0.1f), (0.05f, 0.45f), (0.5f, 0f), (0.7f, -0.2f)];
        long[] firstIndices = [0, 1, 6, 1L << 33];
        foreach ((int outer, int length, int stride) in layouts)
            foreach ((string kind, float[] values) in Kinds(random, outer * length * stride))
            {
                int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
                foreach ((float low, float epsilon) in settings)
                {
                    long firstIndex = firstIndices[random.Next(firstIndices.Length)];
                    float[] expected = Reference(values, positions, length, low, epsilon, key, firstIndex);
                    float[] actual = (float[])values.Clone();
                    kernels.SampleByMagnitudeRank(actual, length, stride, low, epsilon, 0.5f, false, key, firstIndex);
                    BitAssert.Identical(expected, actual,
                        $"seed {seed}, [{outer}, {length}, {stride}], {kind}, low {low}, ε {epsilon}, first index {firstIndex}");
                }
            }
    }

    [CpuWidthFact("Scalar")]
    public void Scalar_counting_path_matches_reference_bit_for_bit() => CountingPathMatchesReference(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_counting_path_matches_reference_bit_for_bit() => CountingPathMatchesReference(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_counting_path_matches_reference_bit_for_bit() => CountingPathMatchesReference(PhiloxWidth.Avx512);

    /// <summary>
    /// The counting path on one vector width (its Philox words, sure-draw decision and bucket starts), whatever the
    /// widest this CPU has: every width must give the reference's bits.
    /// </summary>
    private static void CountingPathMatchesReference(PhiloxWidth width)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0x3C3C3C3Cu, 2);
        (int Outer, int Length, int Stride)[] layouts = [(3, 2048, 1), (2, 1021, 3), (1, 4099, 1), (1, 8192, 1)];
        foreach ((int outer, int length, int stride) in layouts)
            foreach ((string kind, float[] values) in Kinds(random, outer * length * stride))
            {
                int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
                foreach ((float low, float epsilon) in new[] { (0.2f, 0.1f), (0.05f, 0.45f) })
                {
                    long firstIndex = random.Next(2) == 0 ? 0 : 5;
                    float[] expected = Reference(values, positions, length, low, epsilon, key, firstIndex);
                    float[] actual = (float[])values.Clone();
                    MagnitudeRankSampling.SampleFibers(actual, length, stride, new(low, epsilon, 0.5f, false), key, firstIndex, width);
                    BitAssert.Identical(expected, actual,
                        $"{width}, seed {seed}, [{outer}, {length}, {stride}], {kind}, low {low}, ε {epsilon}, first index {firstIndex}");
                }
            }
    }

    /// <summary>
    /// The pivot-count path (AVX-512; the kernels take it for contiguous fibers of spread keys up to 4,096) on every
    /// data kind, ties and crowded keys included, odd lengths (the last keys in a partial vector) and every edge of the
    /// keep probability: ε 0 (nothing open), p falling, p from below 0 to above 1, every draw open (p from 0 to 1).
    /// </summary>
    [CpuWidthFact("Avx512")]
    public void Pivot_path_matches_reference_bit_for_bit() =>
        PathMatchesReference(MagnitudeRankSampling.OpenDrawPath.Pivots,
            [(2, 512, 1), (1, 513, 1), (2, 1021, 1), (3, 2048, 1), (1, 4099, 1), (1, 8192, 1), (2, 600, 2)],
            [(0.2f, 0.1f), (0.05f, 0.45f), (0.5f, 0f), (0.7f, -0.2f), (0f, 0.5f), (-0.1f, 0.6f), (0.3f, 1e-6f)]);

    /// <summary>The path each fiber chooses (pivots for spread keys, one-key buckets for crowded ones) on every data kind.</summary>
    [CpuWidthFact("Avx512")]
    public void Chosen_path_matches_reference_bit_for_bit() =>
        PathMatchesReference(MagnitudeRankSampling.OpenDrawPath.Chosen,
            [(3, 2048, 1), (1, 1021, 1), (1, 4096, 1), (1, 4097, 1)],
            [(0.2f, 0.1f), (0f, 0.5f), (0.7f, -0.2f)]);

    private static void PathMatchesReference(MagnitudeRankSampling.OpenDrawPath path, (int Outer, int Length, int Stride)[] layouts,
        (float Low, float Epsilon)[] settings)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0x0F0F0F0Fu, 3);
        foreach ((int outer, int length, int stride) in layouts)
            foreach ((string kind, float[] values) in Kinds(random, outer * length * stride))
            {
                int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
                foreach ((float low, float epsilon) in settings)
                {
                    long firstIndex = random.Next(2) == 0 ? 0 : 3;
                    float[] expected = Reference(values, positions, length, low, epsilon, key, firstIndex);
                    float[] actual = (float[])values.Clone();
                    MagnitudeRankSampling.SampleFibers(actual, length, stride, new(low, epsilon, 0.5f, false), key, firstIndex,
                        PhiloxWidth.Avx512, path);
                    BitAssert.Identical(expected, actual,
                        $"{path}, seed {seed}, [{outer}, {length}, {stride}], {kind}, low {low}, ε {epsilon}, first index {firstIndex}");
                }
            }
    }

    /// <summary>The pivot sample: sorted keys of the fiber, the sentinel last, and whether a key repeats (the path choice).</summary>
    [Fact]
    public void Pivot_sample_is_sorted_and_tells_crowded_keys()
    {
        var random = new System.Random(TestData.NewSeed());
        foreach ((string kind, float[] values) in Kinds(random, 2048))
        {
            uint[] keys = Array.ConvertAll(values, v => BitConverter.SingleToUInt32Bits(v) & 0x7FFFFFFFu);
            var pivots = new uint[PivotRankSampling.Pivots + 1];
            bool distinct = PivotRankSampling.SamplePivots(keys, pivots);
            var sample = new uint[PivotRankSampling.Pivots];
            for (int i = 0; i < sample.Length; i++)
                sample[i] = keys[(2 * i + 1) * keys.Length / (2 * PivotRankSampling.Pivots)];
            Array.Sort(sample);
            Assert.Equal(sample, pivots[..PivotRankSampling.Pivots]);
            Assert.Equal(uint.MaxValue, pivots[PivotRankSampling.Pivots]);
            Assert.Equal(sample.Distinct().Count() == sample.Length, distinct);
            if (kind is "bf16 task vector" or "all equal magnitudes")
                Assert.False(distinct, kind); // crowded keys: the one-key buckets
            if (kind == "float32 normal")
                Assert.True(distinct, kind);
        }
    }

    /// <summary><see cref="RankSamplingScalarReference.Sample"/> with the draws of tensor indices firstIndex + i.</summary>
    private static float[] Reference(float[] values, int[] positions, int length, float low, float epsilon, PhiloxKey key, long firstIndex)
    {
        var output = new float[values.Length];
        for (int index = 0; index < values.Length; index++)
        {
            float p = ScalarReference.Add(low, ScalarReference.Mul(ScalarReference.Mul(ScalarReference.Div(positions[index], length - 1), 2f), epsilon));
            double uniform = (ScalarReference.StreamWord(key, firstIndex + index) >> 8) / 16777216.0;
            output[index] = uniform < p ? values[index] : 0f;
        }
        return output;
    }

    [Fact]
    public void Vector_Philox_words_equal_the_scalar_stream()
    {
        var key = new PhiloxKey(0x0123456789ABCDEFul, 0xCAFEF00Du, 7);
        var words = new uint[200];
        foreach (long first in new long[] { 0, 1, 2, 3, 5, 16, 17, (1L << 34) + 3 })
            foreach (int count in new[] { 0, 1, 3, 4, 15, 16, 17, 31, 33, 64, 199 })
            {
                Array.Fill(words, 0xDEADBEEFu);
                PhiloxStreamWords.Fill(key, first, words.AsSpan(0, count));
                for (int i = 0; i < count; i++)
                    Assert.True(Random.Philox4x32.ElementBits(key, first + i) == words[i], $"first {first}, count {count}, word {i}");
                Assert.Equal(0xDEADBEEFu, words[count]); // nothing written past the count
            }
    }
}

/// <summary>
/// The pieces of the counting path: the bucket of a key (monotone; an even bucket holds one key, so its members' sorted
/// positions follow from their count alone) in vector lanes and scalar, and the vector prefix of the bucket starts.
/// </summary>
public sealed class RankSamplingBucketPieceTests
{
    private static uint[] InterestingKeys(System.Random random)
    {
        var keys = new List<uint> { 0, 1, 2, 3, 0x7FFFFF, 0x800000, 0x800001, 0x7F800000, 0x7F800001, 0x7FC00000, 0x7FFFFFFF, 0x7F7FFFFF };
        for (int i = 0; i < 3000; i++)
        {
            uint key = (uint)random.Next() & 0x7FFFFFFFu;
            keys.Add(key);
            keys.Add(key & 0xFFFF0000u); // bf16-like: few significant bits
            keys.Add(key & 0xFFF80000u);
            keys.Add((key & 0xFFFF0000u) + 1);
            keys.Add(key >> random.Next(1, 31)); // spread over the exponents, down to subnormals
        }
        return [.. keys];
    }

    [Fact]
    public void Buckets_are_monotone_and_an_even_bucket_holds_one_key()
    {
        var random = new System.Random(17);
        uint[] keys = InterestingKeys(random);
        System.Array.Sort(keys);
        foreach (int shift in new[] { 18, 17, 16, 15 })
            foreach (int floor in new[] { 0, 1, 300, (int)(0x3A800000u >> shift), (int)(0x7FFFFFFFu >> shift) - 100, (int)(0x7FFFFFFFu >> shift) })
            {
                int previous = -1;
                foreach (uint key in keys)
                {
                    int bucket = MagnitudeRankSampling.Bucket(key, shift, floor);
                    string context = $"key {key:X8}, shift {shift}, floor {floor}, bucket {bucket}";
                    Assert.True(bucket >= previous, context);
                    previous = bucket;
                    int digit = (int)(key >> shift) - floor;
                    if (bucket == 0)
                        Assert.True(key == 0, context);
                    else if (bucket == 1)
                        Assert.True(key != 0 && digit < 0, context);
                    else if (bucket % 2 == 0)
                        Assert.True(digit == (bucket - 2) / 2 && (key & ((1u << shift) - 1)) == 0, context);
                    else
                        Assert.True(digit == (bucket - 3) / 2 && (key & ((1u << shift) - 1)) != 0, context);
                }
            }
    }

    [CpuWidthFact("Scalar")]
    public void Scalar_buckets_equal_the_scalar_bucket() => BucketsEqualTheScalarBucket(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_buckets_equal_the_scalar_bucket() => BucketsEqualTheScalarBucket(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_buckets_equal_the_scalar_bucket() => BucketsEqualTheScalarBucket(PhiloxWidth.Avx512);

    /// <summary>The buckets of one width's lanes (and its tails) against the scalar <see cref="MagnitudeRankSampling.Bucket"/>.</summary>
    private static void BucketsEqualTheScalarBucket(PhiloxWidth width)
    {
        var random = new System.Random(23);
        uint[] keys = InterestingKeys(random);
        random.Shuffle(keys);
        foreach (int length in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 31, 1003, keys.Length })
            foreach (int shift in new[] { 18, 16, 15 })
                foreach (int floor in new[] { 0, 700, (int)(0x7FFFFFFFu >> shift) })
                {
                    var buckets = new int[length + 1];
                    buckets[length] = -5;
                    MagnitudeRankSampling.Digits(keys.AsSpan(0, length), shift, floor, buckets, width);
                    for (int i = 0; i < length; i++)
                        Assert.True(MagnitudeRankSampling.Bucket(keys[i], shift, floor) == buckets[i], $"key {keys[i]:X8}, shift {shift}, floor {floor}");
                    Assert.Equal(-5, buckets[length]); // nothing written past the keys
                }
    }

    [CpuWidthFact("Scalar")]
    public void Scalar_prefix_gives_the_bucket_starts_and_where_the_later_half_begins() => PrefixGivesStarts(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_prefix_gives_the_bucket_starts_and_where_the_later_half_begins() => PrefixGivesStarts(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_prefix_gives_the_bucket_starts_and_where_the_later_half_begins() => PrefixGivesStarts(PhiloxWidth.Avx512);

    /// <summary>Sparse counts (most groups of 8 or 16 buckets empty, as in bf16 fibers) and dense ones, with tails.</summary>
    private static void PrefixGivesStarts(PhiloxWidth width)
    {
        var random = new System.Random(29);
        foreach (int buckets in new[] { 0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 100, 2050, 4098 })
        foreach (int sparsity in new[] { 1, 4, 60 })
        {
            var firstHalf = new int[buckets];
            var starts = new int[buckets + 1];
            var expected = new int[buckets + 1];
            var expectedLaterHalf = new int[buckets];
            int sum = 0;
            for (int b = 0; b < buckets; b++)
            {
                firstHalf[b] = random.Next(4 * sparsity) == 0 ? random.Next(200) : 0;
                starts[b] = random.Next(3 * sparsity) == 0 ? random.Next(200) : 0;
                expected[b] = sum;
                expectedLaterHalf[b] = sum + firstHalf[b];
                sum += firstHalf[b] + starts[b];
            }
            expected[buckets] = sum;
            MagnitudeRankSampling.ExclusivePrefix(firstHalf, starts, buckets, width);
            Assert.Equal(expected, starts);
            Assert.Equal(expectedLaterHalf, firstHalf); // where the later half's members of each bucket begin
        }
    }
}

/// <summary>
/// The fused sampling with L1 norms (<see cref="CpuKernels.SampleByMagnitudeRankWithNorms"/>) against SumOfAbs,
/// SampleByMagnitudeRank and SumOfAbs called in turn: same values, same bits of both norms, whether the 64K chunks hold
/// whole fiber slabs (the fused path) or not (the three calls).
/// </summary>
public sealed class RankSamplingNormsTests
{
    [Fact]
    public void SampleByMagnitudeRankWithNorms_equals_the_three_calls()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        // (outer, length, stride): slabs of 2,048 (chunks of whole slabs, a partial last chunk), 4,096 × 1 over four
        // chunks, slabs of 2,048 as 1,024 × 2 (strided fibers), 1,000 (chunks cut through slabs: the three calls).
        (int Outer, int Length, int Stride)[] layouts = [(40, 2048, 1), (64, 4096, 1), (70, 1024, 2), (70, 1000, 1)];
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        foreach (var kernels in new[] { new CpuKernels(1), new CpuKernels() })
            foreach ((int outer, int length, int stride) in layouts)
            {
                int n = outer * length * stride;
                float[] plain = TestData.Plain(random, n);
                // bf16-like deltas: few significant bits, crowded one-key buckets.
                float[] coarse = new float[n];
                for (int i = 0; i < n; i++)
                    coarse[i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(plain[i] * 1e-3f) & 0xFFFF0000u);
                foreach (float[] input in new[] { plain, coarse })
                    foreach (long firstIndex in new[] { 0L, 5L * length * stride })
                    {
                        string context = $"seed {seed}, [{outer}, {length}, {stride}], first {firstIndex}, threads {kernels.MaxDegreeOfParallelism}";
                        float[] expected = (float[])input.Clone();
                        double before = kernels.SumOfAbs(expected);
                        kernels.SampleByMagnitudeRank(expected, length, stride, 0.2f, 0.1f, 0.3f, false, key, firstIndex);
                        double after = kernels.SumOfAbs(expected);

                        float[] actual = (float[])input.Clone();
                        var norms = kernels.SampleByMagnitudeRankWithNorms(actual, length, stride, 0.2f, 0.1f, 0.3f, false, key, firstIndex);
                        BitAssert.Identical(expected, actual, context);
                        Assert.True(BitAssert.Same(before, norms.Before), $"{context}: norm before {norms.Before:R}, expected {before:R}");
                        Assert.True(BitAssert.Same(after, norms.After), $"{context}: norm after {norms.After:R}, expected {after:R}");
                        Assert.NotEqual(before, after); // the sampling dropped something
                    }
            }
    }
}
