using Weld.Kernels.Cpu;
using Xunit;
using Xunit.Sdk;

namespace Weld.Kernels.Tests;

/// <summary>Random stacked inputs for the method kernels: every <see cref="TestData"/> kind at every size.</summary>
internal static class MethodKernelInputs
{
    /// <summary>Calls <paramref name="check"/>(context, stacked, n) for each size and kind with <paramref name="rows"/> rows.</summary>
    public static void ForEach(int seed, int rows, Action<string, float[], int> check, int[]? sizes = null)
    {
        var random = new System.Random(seed);
        foreach (int n in sizes ?? TestData.Sizes)
        {
            foreach (string kind in new[] { "plain", "ties", "plain+specials", "ties+specials" })
                check($"seed {seed}, rows {rows}, n {n}, {kind}", Stacked(random, kind, rows, n), n);
        }
    }

    /// <summary><paramref name="rows"/> rows of one kind back to back.</summary>
    public static float[] Stacked(System.Random random, string kind, int rows, int n)
    {
        var stacked = new float[rows * n];
        for (int k = 0; k < rows; k++)
        {
            float[] row = kind switch
            {
                "plain" => TestData.Plain(random, n),
                "ties" => TestData.TieHeavy(random, n),
                "plain+specials" => TestData.WithSpecials(random, TestData.Plain(random, n)),
                _ => TestData.WithSpecials(random, TestData.TieHeavy(random, n)),
            };
            row.CopyTo(stacked, k * n);
        }
        return stacked;
    }

    public static void SameCounts(long[] expected, long[] actual, string context)
    {
        for (int k = 0; k < expected.Length; k++)
        {
            if (expected[k] != actual[k])
                throw new XunitException($"{context}: count {k} is {actual[k]}, expected {expected[k]}");
        }
    }

    public static void SameBytes(byte[] expected, byte[] actual, string context)
    {
        for (int b = 0; b < expected.Length; b++)
        {
            if (expected[b] != actual[b])
                throw new XunitException($"{context}: byte {b} is 0x{actual[b]:X2}, expected 0x{expected[b]:X2}");
        }
    }
}

/// <summary>The newer methods' CPU kernels against <see cref="MethodScalarReference"/>, on one thread and on all.</summary>
public sealed class MethodKernelsTests
{
    /// <summary>Empty, scalar tails, and two chunks (one a single element): enough for the many-parameter kernels.</summary>
    private static readonly int[] s_smallSizes = [0, 1, 7, 65537];

    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SelectLargestMagnitude_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 2, 3, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                var actual = new float[n];
                kernels.SelectLargestMagnitude(stacked, actual);
                // Selection copies a value: NaN payloads and the sign of zero must survive too.
                BitAssert.Identical(MethodScalarReference.LargestMagnitude(stacked, rows, n), actual, context);
            });
        }
    }

    [Fact]
    public void SelectLargestMagnitude_ties_go_to_the_first_row_and_NaN_wins()
    {
        var kernels = new CpuKernels(1);
        float nan = BitConverter.Int32BitsToSingle(0x7FC01234);
        // Columns: +0 vs −0, −2 vs 2, ∞ vs NaN, 1 vs −3 vs 3.
        float[] stacked = [0f, -2f, float.PositiveInfinity, 1f, -0f, 2f, nan, -3f, -0f, 2f, 1f, 3f];
        var output = new float[4];
        kernels.SelectLargestMagnitude(stacked, output);
        BitAssert.Identical([0f, -2f, nan, -3f], output, "hand-made");
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void TallMask_matches_reference_exactly(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (float lambda in new[] { 0f, 0.4f, 1f, float.PositiveInfinity })
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] task = stacked[..n], multiTask = stacked[n..];
                (byte[] expected, long expectedSet) = MethodScalarReference.TallMask(task, multiTask, lambda);
                byte[] actual = Enumerable.Repeat((byte)0xA5, expected.Length).ToArray(); // stale bytes must be overwritten
                long set = kernels.TallMask(task, multiTask, lambda, actual);
                MethodKernelInputs.SameBytes(expected, actual, $"{context}, λ {lambda}");
                Assert.Equal(expectedSet, set);
            });
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void TallRestore_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
        {
            float[] baseline = stacked[..n], multiTask = stacked[n..];
            var packed = new byte[(n + 7) / 8];
            random.NextBytes(packed); // trailing bits set too: they must be ignored
            var actual = new float[n];
            kernels.TallRestore(baseline, multiTask, packed, actual);
            BitAssert.Equal(MethodScalarReference.TallRestore(baseline, multiTask, packed), actual, context);
        });
    }

    [Fact]
    public void TallMask_rejects_a_packed_buffer_of_the_wrong_size()
    {
        var kernels = new CpuKernels(1);
        var values = new float[9];
        Assert.Throws<ArgumentException>(() => kernels.TallMask(values, values, 1f, new byte[1]));
        Assert.Throws<ArgumentException>(() => kernels.TallMask(values, new float[8], 1f, new byte[2]));
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void ConsensusMerge_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        float[][] lambdaSets = [[0.4f], [0.4f, 0.4f], [0.2f, 1f, 0f], [0.5f, 0.6f, 0.3f, 1f, 0.4f]];
        foreach (float[] lambdas in lambdaSets)
        {
            foreach (int minAgreeing in new[] { 0, 2, 4 })
            {
                MethodKernelInputs.ForEach(seed + lambdas.Length, lambdas.Length, (context, stacked, n) =>
                {
                    var actual = new float[n];
                    kernels.ConsensusMerge(stacked, lambdas, minAgreeing, actual);
                    BitAssert.Equal(MethodScalarReference.Consensus(stacked, lambdas, minAgreeing, n), actual,
                        $"{context}, λ [{string.Join(", ", lambdas)}], k {minAgreeing}");
                }, s_smallSizes);
            }
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void FisherMerge_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.3f, 2f, 0f], [1f, 0.5f, 0.25f, 4f]];
        foreach (float[] weights in weightSets)
        {
            foreach (float epsilon in new[] { weights.Length == 3 ? 1e-3f : 1e-8f })
            {
                MethodKernelInputs.ForEach(seed + weights.Length, 2 * weights.Length, (context, stacked, n) =>
                {
                    // Tie-heavy Fisher rows are zero a third of the time, so the ε floor is hit.
                    float[] models = stacked[..(weights.Length * n)], fisher = stacked[(weights.Length * n)..];
                    var actual = new float[n];
                    kernels.FisherMerge(models, fisher, weights, epsilon, actual);
                    BitAssert.Equal(MethodScalarReference.Fisher(models, fisher, weights, epsilon, n), actual,
                        $"{context}, w [{string.Join(", ", weights)}], ε {epsilon}");
                }, s_smallSizes);
            }
        }
    }

    [Fact]
    public void FisherMerge_floors_the_denominator_and_keeps_NaN()
    {
        var kernels = new CpuKernels(1);
        float[] models = [3f, 5f, 1f];
        float[] fisher = [0f, -1f, float.NaN];
        var output = new float[3];
        kernels.FisherMerge(models, fisher, [1f], 0.5f, output);
        // 0/0.5 = 0; (−1·5)/max(−1, 0.5) = −10; NaN stays NaN.
        BitAssert.Equal([0f, -10f, float.NaN], output, "hand-made");
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void NearSwap_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (float t in new[] { 1e-6f, 0.001f, 0.5f, 1e30f })
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] v0 = stacked[..n], v1 = stacked[n..];
                var actual = new float[n];
                kernels.NearSwap(v0, v1, t, actual);
                BitAssert.Equal(MethodScalarReference.NearSwap(v0, v1, t), actual, $"{context}, t {t}");
            });
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void RamMerge_and_counts_match_reference_exactly(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        float[][] scaleSets = [[1f], [1f, 1f], [1.02f, 1f, 1.2f], [1f, 1.1f, 1f, 1.05f, 1f]];
        foreach (float[] scales in scaleSets)
        {
            foreach (float epsilon in new[] { scales.Length == 2 ? 0f : 1e-5f, 0.004f })
            {
                int rows = scales.Length;
                MethodKernelInputs.ForEach(seed + rows, rows + 1, (context, stacked, n) =>
                {
                    float[] baseline = stacked[..n], deltas = stacked[n..];
                    string where = $"{context}, a [{string.Join(", ", scales)}], ε {epsilon}";
                    var actual = new float[n];
                    kernels.RamMerge(deltas, baseline, scales, epsilon, actual);
                    BitAssert.Equal(MethodScalarReference.Ram(deltas, baseline, scales, epsilon), actual, where);

                    (long[] shared, long[] unique) = MethodScalarReference.RamCounts(deltas, rows, epsilon);
                    long[] actualShared = new long[rows], actualUnique = new long[rows];
                    Array.Fill(actualShared, 7); // the kernel adds to what is there
                    kernels.RamContributionCounts(deltas, epsilon, actualShared, actualUnique);
                    for (int k = 0; k < rows; k++)
                        actualShared[k] -= 7;
                    MethodKernelInputs.SameCounts(shared, actualShared, where + " shared");
                    MethodKernelInputs.SameCounts(unique, actualUnique, where + " unique");
                }, s_smallSizes);
            }
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void VarianceAcrossRows_and_ClearRowsWhereZero_match_reference(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 2, 3, 4, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                (float[] expected, long expectedNonzero) = MethodScalarReference.Variance(stacked, rows, n);
                var actual = new float[n];
                long nonzero = kernels.VarianceAcrossRows(stacked, actual);
                BitAssert.Equal(expected, actual, context);
                Assert.Equal(expectedNonzero, nonzero);

                // The tie-heavy rows make many selector zeros (and −0s); a NaN selector keeps the column.
                float[] selector = stacked[..n];
                float[] cleared = (float[])stacked.Clone();
                kernels.ClearRowsWhereZero(cleared, selector);
                BitAssert.Identical(MethodScalarReference.ClearRowsWhereZero(stacked, selector), cleared, context + " clear");
            }, s_smallSizes);
        }
    }

    /// <summary>
    /// The variance kernel's 512-bit body (taken where AVX-512 is, as on the bench machine) and its 256-bit body (CI
    /// machines without it) against the scalar reference, bit for bit; rows of a power of two divide by multiplying with
    /// the reciprocal, others divide.
    /// </summary>
    [Fact]
    public void VarianceAcrossRows_gives_the_same_bits_with_512_and_256_bit_vectors()
    {
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 2, 3, 4, 8 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                (float[] expected, long expectedNonzero) = MethodScalarReference.Variance(stacked, rows, n);
                foreach (bool wide in new[] { true, false })
                {
                    var actual = new float[n];
                    long nonzero = MethodKernels.VarianceAcrossRows(stacked, actual, wide);
                    BitAssert.Equal(expected, actual, $"{context}, {(wide ? 512 : 256)}-bit");
                    Assert.Equal(expectedNonzero, nonzero);
                }
            }, [0, 1, 15, 16, 17, 40, 1031]);
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SignErasedMix_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.5f, 0.5f], [0.2f, 0.7f, 0.1f], [0f, 0f, 0f], [0.1f, 0.4f, 0.2f, 0.2f, 0.1f]];
        foreach (float[] weights in weightSets)
        {
            MethodKernelInputs.ForEach(seed + weights.Length, weights.Length, (context, stacked, n) =>
            {
                var actual = new float[n];
                kernels.SignErasedMix(stacked, weights, 1e-6f, actual);
                BitAssert.Equal(MethodScalarReference.SignErasedMix(stacked, weights, 1e-6f, n), actual,
                    $"{context}, w [{string.Join(", ", weights)}]");
            }, s_smallSizes);
        }
    }

    /// <summary>
    /// SCE's fused kernels read the task vectors through the selector instead of clearing them: the same bits as clearing
    /// (<see cref="IMergeKernels.ClearRowsWhereZero"/>) and then <see cref="IMergeKernels.SumOfSquares"/>, or then
    /// <see cref="IMergeKernels.SignErasedMix"/> and <see cref="IMergeKernels.Axpby"/> onto the base (each checked
    /// against the scalar reference above) — with a selector of many ±0 and NaN entries, without one, and with the output
    /// written over the selector. The inputs are left as they were.
    /// </summary>
    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SCE_fused_kernels_equal_clearing_then_summing_or_mixing_onto_the_base(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.5f, 0.5f], [0.2f, 0.7f, 0.1f], [0f, 0f, 0f]];
        foreach (float[] weights in weightSets)
        {
            int rows = weights.Length;
            MethodKernelInputs.ForEach(seed + rows, rows + 2, (context, data, n) =>
            {
                float[] stacked = data[..(rows * n)];
                float[] selector = data[(rows * n)..((rows + 1) * n)];
                float[] baseline = data[((rows + 1) * n)..];
                foreach (bool selects in new[] { true, false })
                {
                    string where = $"{context}, rows {rows}, {(selects ? "selected" : "no selector")}";
                    float[] cleared = (float[])stacked.Clone();
                    if (selects) kernels.ClearRowsWhereZero(cleared, selector);
                    var expected = new float[n];
                    kernels.SignErasedMix(cleared, weights, 1e-6f, expected);
                    kernels.Axpby(1f, baseline, 1f, expected, expected);

                    float[] input = (float[])stacked.Clone();
                    var actual = new float[n];
                    kernels.SignErasedMixOntoBase(input, selects ? selector : [], weights, 1e-6f, baseline, actual);
                    BitAssert.Equal(expected, actual, where + " mix"); // fused vs composed: NaN payloads are not part of the contract
                    BitAssert.Identical(stacked, input, where + " mix leaves the task vectors");
                    if (!selects) continue;

                    float[] aliased = (float[])selector.Clone();
                    kernels.SignErasedMixOntoBase(input, aliased, weights, 1e-6f, baseline, aliased);
                    BitAssert.Equal(expected, aliased, where + " mix over the selector");

                    for (int k = 0; k < rows; k++)
                    {
                        double sum = kernels.SumOfSquaresWhereSelected(input.AsSpan(k * n, n), selector);
                        double reference = kernels.SumOfSquares(cleared.AsSpan(k * n, n));
                        Assert.True(BitAssert.Same(reference, sum), $"{where}, row {k}: Σ x² {sum:R}, cleared first {reference:R}");
                    }
                    BitAssert.Identical(stacked, input, where + " sums leave the task vectors");
                }
            }, s_smallSizes);
        }
    }

    /// <summary>
    /// The mix onto the base with 512-bit vectors first and without them (the path a CPU without AVX-512 takes) gives the
    /// bits of clearing, mixing and adding the base (<see cref="IMergeKernels.ClearRowsWhereZero"/>,
    /// <see cref="IMergeKernels.SignErasedMix"/>, <see cref="IMergeKernels.Axpby"/>), with and without a selector.
    /// </summary>
    [Fact]
    public void SignErasedMixOntoBase_gives_the_same_bits_with_512_and_narrower_vectors()
    {
        var kernels = new CpuKernels(1);
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.4f, 0.6f], [0.2f, 0.7f, 0.1f], [0f, 0f, 0f]];
        foreach (float[] weights in weightSets)
        {
            int rows = weights.Length;
            MethodKernelInputs.ForEach(seed + rows, rows + 2, (context, data, n) =>
            {
                float[] stacked = data[..(rows * n)], selector = data[(rows * n)..((rows + 1) * n)], baseline = data[((rows + 1) * n)..];
                foreach (bool selects in new[] { true, false })
                {
                    float[] cleared = (float[])stacked.Clone();
                    if (selects) kernels.ClearRowsWhereZero(cleared, selector);
                    var expected = new float[n];
                    kernels.SignErasedMix(cleared, weights, 1e-6f, expected);
                    kernels.Axpby(1f, baseline, 1f, expected, expected);
                    foreach (bool wide in new[] { true, false })
                    {
                        var actual = new float[n];
                        MethodKernels.SignErasedMixOntoBase(stacked, selects ? selector : [], weights, 1e-6f, baseline, actual, wide);
                        BitAssert.Equal(expected, actual, $"{context}, rows {rows}, {(selects ? "selected" : "no selector")}, {(wide ? 512 : 256)}-bit");
                    }
                }
            }, [0, 1, 7, 8, 15, 16, 17, 40, 1031]);
        }
    }

    /// <summary>
    /// SCE's energies of every row in one sweep add to each sum the bits of one
    /// <see cref="IMergeKernels.SumOfSquaresWhereSelected"/> call per row: odd and even row counts (rows go in pairs),
    /// rows farther apart than their length, sums that start from a value, and the inputs left as they were.
    /// </summary>
    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SCE_energies_of_every_row_in_one_sweep_equal_one_call_per_row(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 2, 3, 4, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows + 1, (context, data, n) =>
            {
                float[] selector = data[(rows * n)..];
                foreach (int gap in new[] { 0, 3 })
                {
                    // Row k at k·(n + gap): the gap holds values no sum may read.
                    int stride = n + gap;
                    var stacked = new float[rows * stride];
                    Array.Fill(stacked, float.NaN);
                    for (int k = 0; k < rows; k++) data.AsSpan(k * n, n).CopyTo(stacked.AsSpan(k * stride));
                    float[] pristine = (float[])stacked.Clone();
                    double[] sums = new double[rows], expected = new double[rows];
                    for (int k = 0; k < rows; k++)
                    {
                        sums[k] = 0.25 * (k + 1);
                        expected[k] = sums[k] + kernels.SumOfSquaresWhereSelected(((float[])stacked.Clone()).AsSpan(k * stride, n), selector);
                    }
                    kernels.AddSumsOfSquaresWhereSelected(stacked.AsSpan(0, (rows - 1) * stride + n), stride, selector, sums);
                    for (int k = 0; k < rows; k++)
                        Assert.True(BitAssert.Same(expected[k], sums[k]), $"{context}, gap {gap}, row {k}: {sums[k]:R}, one call {expected[k]:R}");
                    BitAssert.Identical(pristine, stacked, $"{context}, gap {gap}: the rows are left as they were");
                }
            }, s_smallSizes);
        }
    }

    [Fact]
    public void Stacked_inputs_of_the_wrong_length_throw()
    {
        var kernels = new CpuKernels(1);
        var output = new float[4];
        Assert.Throws<ArgumentException>(() => kernels.SelectLargestMagnitude(new float[6], output));
        Assert.Throws<ArgumentException>(() => kernels.SelectLargestMagnitude([], output));
        Assert.Throws<ArgumentException>(() => kernels.ConsensusMerge(new float[8], [1f], 1, output));
        Assert.Throws<ArgumentException>(() => kernels.FisherMerge(new float[8], new float[4], [1f, 1f], 1e-8f, output));
        Assert.Throws<ArgumentException>(() => kernels.NearSwap(new float[4], new float[3], 1f, output));
        Assert.Throws<ArgumentException>(() => kernels.RamMerge(new float[8], new float[3], [1f, 1f], 0f, output));
        Assert.Throws<ArgumentException>(() => kernels.RamContributionCounts(new float[7], 0f, new long[2], new long[2]));
    }
}
