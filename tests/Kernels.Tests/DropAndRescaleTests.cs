using Weld.Kernels.Cpu;
using Weld.Kernels.Random;
using Xunit;

namespace Weld.Kernels.Tests;

public class DropAndRescaleTests
{
    public static TheoryData<int> Sizes => new(TestData.Sizes);

    [Theory]
    [MemberData(nameof(Sizes))]
    public void DropAndRescale_matches_scalar_Philox_reference(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var kernels = new CpuKernels();
        float[] values = TestData.WithSpecials(random, TestData.Plain(random, length));
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        foreach (float density in new[] { 0f, 0.1f, 0.5f, 0.3f, 0.999f, 1f, 2f })
        {
            foreach (bool rescale in new[] { true, false })
            {
                string context = $"seed {seed}, n {length}, density {density}, rescale {rescale}, key {key}";
                float[] expected = ScalarReference.DropAndRescale(values, density, rescale, key);
                float[] actual = (float[])values.Clone();
                kernels.DropAndRescale(actual, density, rescale, key);
                BitAssert.Equal(expected, actual, context);
            }
        }
    }

    [Fact]
    public void DropAndRescale_keeps_about_density_and_depends_on_every_key_part()
    {
        int seed = TestData.NewSeed();
        var kernels = new CpuKernels();
        var key = new PhiloxKey((ulong)seed, 0xABCDu, 1);
        float[] Mask(PhiloxKey k)
        {
            float[] ones = new float[100_000];
            Array.Fill(ones, 1f);
            kernels.DropAndRescale(ones, 0.25f, false, k);
            return ones;
        }

        float[] baseline = Mask(key);
        int kept = baseline.Count(v => v == 1f);
        // Binomial(100000, 0.25): sd ≈ 137; 8 sd is far beyond chance.
        Assert.InRange(kept, 25_000 - 1100, 25_000 + 1100);
        Assert.False(baseline.SequenceEqual(Mask(key with { Seed = key.Seed + (1UL << 32) })), $"seed {seed}: seed high word ignored");
        Assert.False(baseline.SequenceEqual(Mask(key with { TensorHash = 0xABCEu })), $"seed {seed}: tensor hash ignored");
        Assert.False(baseline.SequenceEqual(Mask(key with { ModelIndex = 2 })), $"seed {seed}: model index ignored");
    }

    [Fact]
    public void DropAndRescale_rejects_NaN_and_negative_density()
    {
        var kernels = new CpuKernels();
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.DropAndRescale(new float[4], float.NaN, true, default));
        Assert.Throws<ArgumentOutOfRangeException>(() => kernels.DropAndRescale(new float[4], -0.5f, true, default));
    }

    /// <summary>
    /// The fused drop-with-norms gives the bits of SumOfAbs, DropAndRescale, SumOfAbs called in turn (the interface's
    /// own definition, which the GPU backend runs): values, both norms, at tensor offsets inside a block and past 2^32,
    /// on one thread and on all.
    /// </summary>
    [Theory]
    [MemberData(nameof(Sizes))]
    public void DropAndRescaleWithNorms_equals_the_three_calls(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = TestData.WithSpecials(random, TestData.Plain(random, length));
        float[] finite = TestData.Plain(random, length);
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        foreach (var kernels in new[] { new CpuKernels(1), new CpuKernels() })
            foreach (float[] input in new[] { values, finite })
                foreach (long firstIndex in new[] { 0L, 3L, (1L << 34) + 1 })
                    foreach (float density in new[] { 0f, 0.3f, 0.99999994f, 1f })
                        foreach (bool rescale in new[] { false, true })
                        {
                            string context = $"seed {seed}, n {length}, first {firstIndex}, density {density}, rescale {rescale}, threads {kernels.MaxDegreeOfParallelism}";
                            float[] expected = (float[])input.Clone();
                            double before = kernels.SumOfAbs(expected);
                            kernels.DropAndRescale(expected, density, rescale, key, firstIndex);
                            double after = kernels.SumOfAbs(expected);

                            float[] actual = (float[])input.Clone();
                            var norms = kernels.DropAndRescaleWithNorms(actual, density, rescale, key, firstIndex);
                            BitAssert.Identical(expected, actual, context);
                            Assert.True(BitAssert.Same(before, norms.Before),
                                $"{context}: norm before {norms.Before:R}, expected {before:R}");
                            Assert.True(BitAssert.Same(after, norms.After),
                                $"{context}: norm after {norms.After:R}, expected {after:R}");
                        }
    }

    [Fact]
    public void Scalar_path_with_norms_equals_the_three_steps() => PathWithNormsEqualsTheThreeSteps(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_path_with_norms_equals_the_three_steps() => PathWithNormsEqualsTheThreeSteps(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_path_with_norms_equals_the_three_steps() => PathWithNormsEqualsTheThreeSteps(PhiloxWidth.Avx512);

    /// <summary>
    /// One chunk dropped with both norms summed inside the drop's loop against SumOfAbs, the drop on the same path, and
    /// SumOfAbs: values bit for bit (NaN payloads included), norms bit for bit (any NaN for a NaN); lengths around the
    /// 8-element groups of SumOfAbs and the 16-, 32- and 64-element steps, starts on and off a Philox block boundary.
    /// </summary>
    private static void PathWithNormsEqualsTheThreeSteps(PhiloxWidth width)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)random.NextInt64(), (uint)random.Next(), (uint)random.Next(8));
        int[] lengths = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 63, 64, 65, 72, 79, 80, 88, 127, 129, 1000 + random.Next(100), 65536];
        long[] starts = [0, 3, 4, 16, 65536, (1L << 34) + 4, (1L << 34) + 1];
        foreach (int length in lengths)
        {
            float[] plain = TestData.Plain(random, length);
            float[] specials = TestData.WithSpecials(random, TestData.Plain(random, length));
            foreach (float[] input in new[] { plain, specials })
                foreach (long start in starts)
                    foreach (float density in new[] { 0f, 0.3f, 0.99999994f, 1f })
                        foreach (bool rescale in new[] { false, true })
                        {
                            string context = $"{width} seed {seed}, n {length}, start {start}, density {density}, rescale {rescale}";
                            float[] expected = (float[])input.Clone();
                            double before = Sum(expected);
                            if (density < 1f)
                                DropAndRescaleKernel.Apply(expected, start, density, rescale, key, width);
                            double after = Sum(expected);

                            float[] actual = (float[])input.Clone();
                            var norms = DropAndRescaleKernel.ApplyWithNorms(actual, start, density, rescale, key, width);
                            BitAssert.Identical(expected, actual, context);
                            Assert.True(BitAssert.Same(before, norms.Before), $"{context}: norm before {norms.Before:R}, expected {before:R}");
                            Assert.True(BitAssert.Same(after, norms.After), $"{context}: norm after {norms.After:R}, expected {after:R}");
                        }
        }

        static double Sum(float[] values) => new CpuKernels(1).SumOfAbs(values);
    }

    [Fact]
    public void Scalar_path_matches_the_reference_at_any_offset() => PathMatchesReference(PhiloxWidth.Scalar);

    [CpuWidthFact("Avx2")]
    public void Avx2_path_matches_the_reference_at_any_offset() => PathMatchesReference(PhiloxWidth.Avx2);

    [CpuWidthFact("Avx512")]
    public void Avx512_path_matches_the_reference_at_any_offset() => PathMatchesReference(PhiloxWidth.Avx512);

    /// <summary>
    /// One path of the kernel (it may hand tails to narrower ones) against the scalar reference and, NaN payloads
    /// included, against the scalar path: lengths around the 16-, 32- and 64-element vector steps, spans that start inside a
    /// Philox block and past block 2^32, NaN/±∞/±0 among the values, densities from 0 (and subnormal) to just below 1.
    /// </summary>
    private static void PathMatchesReference(PhiloxWidth width)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var key = new PhiloxKey((ulong)random.NextInt64() | (1UL << 63), (uint)random.Next(), (uint)random.Next(8));
        int[] lengths = [1, 3, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 97, 127, 128, 129, 191, 1000 + random.Next(100)];
        long[] starts = [0, 1, 2, 3, 4, 13, 32, (1L << 34) + 1, (1L << 34) + 4, random.NextInt64(1L << 40)];
        float[] densities = [0f, float.Epsilon, 1f / 16777216f, 0.1f, 0.3f, 0.5f, 0.99999994f];
        foreach (int length in lengths)
        {
            float[] values = TestData.WithSpecials(random, TestData.Plain(random, length));
            values[random.Next(length)] = -0f;
            values[random.Next(length)] = 0f;
            foreach (long start in starts)
            {
                foreach (float density in densities)
                {
                    foreach (bool rescale in new[] { false, true })
                    {
                        string context = $"{width} seed {seed}, n {length}, start {start}, density {density}, rescale {rescale}, key {key}";
                        float[] expected = ScalarReference.DropAndRescale(values, density, rescale, key, start);
                        float[] scalar = Run(values, start, density, rescale, key, PhiloxWidth.Scalar);
                        float[] actual = Run(values, start, density, rescale, key, width);
                        BitAssert.Equal(expected, actual, context + " vs reference");
                        BitAssert.Identical(scalar, actual, context + " vs scalar path");
                    }
                }
            }
        }
    }

    private static float[] Run(float[] values, long start, float density, bool rescale, PhiloxKey key, PhiloxWidth width)
    {
        float[] result = (float[])values.Clone();
        DropAndRescaleKernel.Apply(result, start, density, rescale, key, width);
        return result;
    }

    /// <summary>
    /// The vector paths' integer rule, word &lt; KeepBelow(density), keeps exactly the words ToUniform(word) &lt; density
    /// keeps: every 24-bit uniform for a few densities, and the words around the cut for many random ones (subnormal,
    /// tiny, multiples of 2^-24 and their neighbours, just below 1).
    /// </summary>
    [Fact]
    public void Integer_keep_rule_equals_the_float_rule()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        static bool FloatRule(uint word, float density) => (word >> 8) / 16777216.0 < density;

        foreach (float density in new[] { 0f, float.Epsilon, 1f / 16777216f, 0.3f, 0.5f, 0.99999994f })
        {
            uint below = DropAndRescaleKernel.KeepBelow(density);
            for (uint m = 0; m < 1u << 24; m++)
            {
                uint word = (m << 8) | (m & 0xFF); // any low byte: it is shifted away
                if ((word < below) != FloatRule(word, density))
                    Assert.Fail($"density {density:R}: word 0x{word:X8} decided {(word < below ? "keep" : "drop")} (cut 0x{below:X8})");
            }
        }

        var densities = new List<float>();
        for (int i = 0; i < 2000; i++)
        {
            float multiple = random.Next(1 << 24) / 16777216f; // exactly on a uniform: the cut sits between two words
            densities.Add(multiple);
            densities.Add(MathF.BitIncrement(multiple));
            densities.Add(MathF.BitDecrement(multiple) is var under && under >= 0 ? under : 0f);
            densities.Add((float)random.NextDouble());
            densities.Add(BitConverter.Int32BitsToSingle(random.Next(0x3F800000))); // any float in [0, 1)
        }
        foreach (float density in densities)
        {
            uint below = DropAndRescaleKernel.KeepBelow(density);
            for (long word = (long)below - 600; word <= (long)below + 600; word++)
            {
                if (word < 0 || word > uint.MaxValue) continue;
                Assert.True(((uint)word < below) == FloatRule((uint)word, density),
                    $"seed {seed}: density {density:R} (0x{BitConverter.SingleToInt32Bits(density):X8}), word 0x{word:X8}, cut 0x{below:X8}");
            }
            uint any = (uint)random.NextInt64(1L << 32);
            Assert.True((any < below) == FloatRule(any, density), $"seed {seed}: density {density:R}, word 0x{any:X8}");
        }
    }
}
