using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// DARE's drop done inside the bf16 decode (<see cref="DecodeDrop"/>, <see cref="DecodeDropKernel"/>) against a plain
/// scalar reference: δ = bf16 widened − subtrahend, the drop of <see cref="ScalarReference.DropAndRescale(float[], float, bool, PhiloxKey, long)"/>,
/// and ‖δ‖₁, ‖drop(δ)‖₁ per 64K chunk summed in SumOfAbs's order spelled out lane by lane (<see cref="AbsSumReference"/>).
/// Values and norms must be exact (any NaN for a NaN); each vector path must also give the scalar path's bits, NaN
/// payloads included.
/// </summary>
public class DecodeDropTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes.Concat([65536 * 3 + 8 + 5]));

    [Theory]
    [MemberData(nameof(Sizes))]
    public void Bf16Minus_matches_the_scalar_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        foreach (var (kind, source, subtrahend) in Inputs(random, length))
        foreach (long firstIndex in new[] { 0L, 3L * DecodeDrop.NormChunkLength, (1L << 34) + 4, 3L })
            foreach (float density in new[] { 0f, 0.3f, 0.99999994f, 1f })
                foreach (bool rescale in new[] { false, true })
                {
                    var (expected, expectedNorms) = Reference(source, subtrahend, firstIndex, new RandomDrop(density, rescale, key, true));
                    foreach (bool withNorms in new[] { false, true })
                    {
                        string context = $"seed {seed}, {kind}, n {length}, first {firstIndex}, density {density}, rescale {rescale}, norms {withNorms}";
                        var drop = new RandomDrop(density, rescale, key, withNorms);
                        var actual = new float[length];
                        double[] norms = Sentinels(DecodeDrop.NormPartials(length));
                        DecodeDrop.Bf16Minus(source, subtrahend, actual, firstIndex, drop, norms);
                        BitAssert.Equal(expected, actual, context);
                        AssertNorms(withNorms ? expectedNorms : Sentinels(norms.Length), norms, context);
                    }
                }
    }

    [Fact]
    public void Scalar_path_matches_the_reference() => PathMatchesReference(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_path_matches_the_reference() => PathMatchesReference(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_path_matches_the_reference() => PathMatchesReference(PhiloxWidth.Avx512);

    /// <summary>
    /// One path of the kernel (tails go to narrower ones) against the reference and, NaN payloads included, against the
    /// scalar path: lengths around SumOfAbs's groups of 8 and the 16-, 32- and 64-element steps, spans of more than one
    /// 64K chunk, starts on the chunk grid, on a Philox block inside a chunk, past block 2^32, and off a block boundary.
    /// </summary>
    private static void PathMatchesReference(PhiloxWidth width)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)random.NextInt64() | (1UL << 63), (uint)random.Next(), (uint)random.Next(8));
        int[] lengths = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 48, 63, 64, 65, 72, 79, 80, 88, 127, 129,
            1000 + random.Next(100), 65536, 65536 + 64 + 17, 2 * 65536 + 9];
        long[] starts = [0, 4, 16, 65536, (1L << 34) + 4, 3, (1L << 34) + 1];
        foreach (int length in lengths)
        foreach (var (kind, source, subtrahend) in Inputs(random, length))
        {
            // The spans of more than one chunk take fewer combinations: the scalar reference draws each word alone.
            bool large = length > 2000;
            foreach (long start in large ? [0, (1L << 34) + 4, 3] : starts)
                foreach (float density in large ? [0.3f, 1f] : new[] { 0f, float.Epsilon, 0.3f, 0.99999994f, 1f })
                    foreach (bool rescale in new[] { false, true })
                    {
                        var (expected, expectedNorms) = Reference(source, subtrahend, start, new RandomDrop(density, rescale, key, true));
                        foreach (bool withNorms in new[] { false, true })
                        {
                            string context = $"{width} seed {seed}, {kind}, n {length}, start {start}, density {density}, rescale {rescale}, norms {withNorms}";
                            var drop = new RandomDrop(density, rescale, key, withNorms);
                            var (actual, norms) = Run(source, subtrahend, start, drop, width);
                            var (scalar, scalarNorms) = Run(source, subtrahend, start, drop, PhiloxWidth.Scalar);
                            BitAssert.Equal(expected, actual, context + " vs reference");
                            BitAssert.Identical(scalar, actual, context + " vs scalar path");
                            if (!withNorms) continue;
                            AssertNorms(expectedNorms, norms, context + " vs reference");
                            AssertNorms(scalarNorms, norms, context + " vs scalar path");
                        }
                    }
        }
    }

    /// <summary>The drop on values decoded elsewhere (other dtypes, gathered rows): the reference's drop and norms of the same values.</summary>
    [Theory]
    [MemberData(nameof(Sizes))]
    public void Apply_matches_the_scalar_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        foreach (float[] values in new[] { Wide(random, length), TestData.WithSpecials(random, TestData.Plain(random, length)) })
        foreach (long firstIndex in new[] { 0L, 65536L, 5L })
            foreach (float density in new[] { 0f, 0.3f, 1f })
                foreach (bool rescale in new[] { false, true })
                    foreach (bool withNorms in new[] { false, true })
                    {
                        string context = $"seed {seed}, n {length}, first {firstIndex}, density {density}, rescale {rescale}, norms {withNorms}";
                        var drop = new RandomDrop(density, rescale, key, withNorms);
                        float[] expected = ScalarReference.DropAndRescale(values, density, rescale, key, firstIndex);
                        float[] actual = (float[])values.Clone();
                        double[] norms = Sentinels(DecodeDrop.NormPartials(length));
                        DecodeDrop.Apply(actual, firstIndex, drop, norms);
                        BitAssert.Equal(expected, actual, context);
                        AssertNorms(withNorms ? ChunkNorms(values, expected) : Sentinels(norms.Length), norms, context);
                    }
    }

    /// <summary>
    /// A row decoded the way the loader decodes it (2^20-element spans in parallel, each in 2^18-element calls) on one
    /// thread and on all gives the bits and partials of one call over the whole row: the partials depend on the chunk
    /// grid only, never on how the row is split among calls or threads.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(-1)]
    public void A_row_split_among_calls_and_threads_gives_the_bits_of_one_call(int threads)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        const int length = (5 << 19) + 12345; // two full 2^20 spans, a part-span, a part-chunk
        ushort[] source = Bf16Of(Wide(random, length));
        float[] subtrahend = Wide(random, length);
        var drop = new RandomDrop(0.3f, false, new PhiloxKey((ulong)seed, 77, 2), WithNorms: true);
        const long offset = 3L << 20; // a streamed chunk's first element

        var whole = new float[length];
        var wholeNorms = new double[DecodeDrop.NormPartials(length)];
        DecodeDrop.Bf16Minus(source, subtrahend, whole, offset, drop, wholeNorms);

        var split = new float[length];
        var splitNorms = new double[wholeNorms.Length];
        int spans = (length + (1 << 20) - 1) >> 20;
        Parallel.For(0, spans, new ParallelOptions { MaxDegreeOfParallelism = threads }, span =>
        {
            for (int start = span << 20; start < Math.Min(length, (span + 1) << 20); start += 1 << 18)
            {
                int count = Math.Min(1 << 18, length - start);
                DecodeDrop.Bf16Minus(source.AsSpan(start, count), subtrahend.AsSpan(start, count), split.AsSpan(start, count),
                    offset + start, drop, splitNorms.AsSpan(start / DecodeDrop.NormChunkLength * 2));
            }
        });
        BitAssert.Identical(whole, split, $"seed {seed}, threads {threads}");
        AssertNorms(wholeNorms, splitNorms, $"seed {seed}, threads {threads}");
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        var key = new PhiloxKey(1, 2, 3);
        ushort[] source = new ushort[100];
        float[] subtrahend = new float[100], destination = new float[100];
        Assert.Throws<ArgumentOutOfRangeException>(() => DecodeDrop.Bf16Minus(source, subtrahend, destination, -4, new RandomDrop(0.5f, false, key, false), []));
        Assert.Throws<ArgumentOutOfRangeException>(() => DecodeDrop.Bf16Minus(source, subtrahend, destination, 0, new RandomDrop(float.NaN, false, key, false), []));
        Assert.Throws<ArgumentOutOfRangeException>(() => DecodeDrop.Apply(destination, 0, new RandomDrop(-0.1f, false, key, false), []));
        Assert.Throws<ArgumentException>(() => DecodeDrop.Bf16Minus(source, subtrahend, destination, 0, new RandomDrop(0.5f, false, key, true), new double[1]));
        Assert.Throws<ArgumentException>(() => DecodeDrop.Bf16Minus(source, subtrahend.AsSpan(1), destination, 0, new RandomDrop(0.5f, false, key, false), []));
    }

    private static (float[] Values, double[] Norms) Run(ushort[] source, float[] subtrahend, long firstIndex, RandomDrop drop, PhiloxWidth width)
    {
        var values = new float[source.Length];
        double[] norms = Sentinels(DecodeDrop.NormPartials(source.Length));
        DecodeDropKernel.Bf16Minus(source, subtrahend, values, firstIndex, drop.Density, drop.Rescale, drop.Key,
            drop.WithNorms ? norms : Span<double>.Empty, width);
        return (values, norms);
    }

    /// <summary>The plain reference: decode and subtract element by element, drop, then the norms chunk by chunk.</summary>
    private static (float[] Values, double[] Norms) Reference(ushort[] source, float[] subtrahend, long firstIndex, RandomDrop drop)
    {
        var delta = new float[source.Length];
        for (int i = 0; i < delta.Length; i++)
            delta[i] = BitConverter.UInt32BitsToSingle((uint)source[i] << 16) - subtrahend[i];
        float[] dropped = ScalarReference.DropAndRescale(delta, drop.Density, drop.Rescale, drop.Key, firstIndex);
        return (dropped, ChunkNorms(delta, dropped));
    }

    /// <summary>(‖before‖₁, ‖after‖₁) of every 64K chunk, in SumOfAbs's order.</summary>
    private static double[] ChunkNorms(float[] before, float[] after)
    {
        var norms = new double[DecodeDrop.NormPartials(before.Length)];
        for (int chunk = 0, start = 0; start < before.Length; chunk++, start += DecodeDrop.NormChunkLength)
        {
            int count = Math.Min(DecodeDrop.NormChunkLength, before.Length - start);
            norms[2 * chunk] = AbsSumReference(before.AsSpan(start, count));
            norms[2 * chunk + 1] = AbsSumReference(after.AsSpan(start, count));
        }
        return norms;
    }

    /// <summary>
    /// SumOfAbs's order spelled out: float64 lanes 0–3 ("lower") take elements 8g..8g+3, lanes 4–7 ("upper") take
    /// 8g+4..8g+7, group by group; then (l0+u0 + l1+u1) + (l2+u2 + l3+u3); then the last count mod 8 one by one.
    /// </summary>
    private static double AbsSumReference(ReadOnlySpan<float> x)
    {
        var lower = new double[4];
        var upper = new double[4];
        int groups = x.Length / 8;
        for (int g = 0; g < groups; g++)
            for (int j = 0; j < 4; j++)
            {
                lower[j] += Math.Abs((double)x[8 * g + j]);
                upper[j] += Math.Abs((double)x[8 * g + 4 + j]);
            }
        double sum = ((lower[0] + upper[0]) + (lower[1] + upper[1])) + ((lower[2] + upper[2]) + (lower[3] + upper[3]));
        for (int i = 8 * groups; i < x.Length; i++)
            sum += Math.Abs((double)x[i]);
        return sum;
    }

    /// <summary>
    /// The two kinds of input: finite values spread over 2^±60, so the float64 sums round and a changed summation order
    /// shows in the norms' bits; and plain values with NaNs (quiet, signalling, negative), ±∞, ±0 and subnormals among
    /// both the bf16 patterns and the subtrahend.
    /// </summary>
    private static IEnumerable<(string Kind, ushort[] Source, float[] Subtrahend)> Inputs(System.Random random, int length)
    {
        yield return ("wide", Bf16Of(Wide(random, length)), Wide(random, length));
        ushort[] bits = Bf16Of(TestData.Plain(random, length));
        ushort[] specials = [0x7FC0, 0xFFC1, 0x7F81, 0x7F80, 0xFF80, 0x0000, 0x8000, 0x0001, 0x807F];
        for (int j = 0; j < length / 50 + Math.Min(length, 3); j++)
            bits[random.Next(length)] = specials[random.Next(specials.Length)];
        yield return ("specials", bits, TestData.WithSpecials(random, TestData.Plain(random, length)));
    }

    private static float[] Wide(System.Random random, int length)
    {
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-60, 61)));
        return values;
    }

    private static ushort[] Bf16Of(float[] values)
    {
        var bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++) bits[i] = (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16);
        return bits;
    }

    private static double[] Sentinels(int length)
    {
        var values = new double[length];
        Array.Fill(values, -12345.678);
        return values;
    }

    private static void AssertNorms(double[] expected, double[] actual, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitAssert.Same(expected[i], actual[i]),
                $"{context}: partial {i} (chunk {i / 2}, {(i % 2 == 0 ? "before" : "after")}) is {actual[i]:R}, expected {expected[i]:R}");
    }
}
