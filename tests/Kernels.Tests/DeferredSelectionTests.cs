using System.Numerics;
using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// Deferred magnitude selections (<see cref="IMergeKernels.SelectTopK"/>, <see cref="IMergeKernels.SelectMagnitudeBand"/>)
/// applied by the combines as they read the rows: against the scalar references (a stable sort masks each row, then the
/// scalar combine), and against the calls they replace (KeepTopK / KeepMagnitudeBand on every row, then the plain
/// combine). Tie-heavy rows over several 64K chunks put the tie cut inside chunks; NaN and ±∞ sprinkled in; 1 and 4
/// threads; the vector lanes against the scalar read.
/// </summary>
/// <remarks>NaN payloads are not part of the combines' contract (<see cref="PreScaledCombineTests"/>), every other bit is.</remarks>
public class DeferredSelectionTests
{
    private static readonly float[][] s_preScaleSets = [[], [1.4285715f, 1f, 0.93f], [float.NaN, float.PositiveInfinity, -0.5f]];
    private static readonly float[] s_weights = [0.5f, -0.3f, 0.4f];

    public static TheoryData<int> Sizes()
    {
        var data = new TheoryData<int>();
        foreach (int length in TestData.Sizes)
            data.Add(length);
        data.Add(13);
        data.Add(4103);
        data.Add(3 * 65536 + 4103);
        return data;
    }

    /// <summary>A top-k (or no selection) per row: every k edge, and one at random.</summary>
    private static long?[] TopKCounts(System.Random random, int length) =>
    [
        random.Next(3) switch { 0 => length / 3, 1 => 0, _ => random.Next(length + 1) },
        random.Next(4) switch { 0 => length / 2 + 1, 1 => Math.Max(length - 1, 0), 2 => 1, _ => length + 5 },
        random.Next(3) == 0 ? null : random.Next(length + 1),
    ];

    /// <summary>A band (or no selection) per row: cuts that meet, one-sided, both sides, none.</summary>
    private static (long Bottom, long Top)?[] BandCuts(System.Random random, int length) =>
    [
        (random.Next(length + 1) / 2, random.Next(length + 1) / 3),
        random.Next(4) switch { 0 => (length / 3, 0), 1 => (0, length / 5 + 1), 2 => (length, 1), _ => (0, 0) },
        random.Next(3) == 0 ? null : (length / 4, length / 4),
    ];

    [Theory]
    [MemberData(nameof(Sizes))]
    public void SelectTopK_then_SignConsensusMergeOntoBase_is_the_masked_rows_merged(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int threads in new[] { 1, 4 })
        {
            var kernels = new CpuKernels(threads);
            float[] stacked = PreScaledCombineTests.Rows(random, s_weights.Length, length);
            long?[] counts = TopKCounts(random, length);
            float[] masked = (float[])stacked.Clone();
            for (int k = 0; k < counts.Length; k++)
                if (counts[k] is long count)
                    ScalarReference.TopK(Row(stacked, k, length), ScalarReference.DescendingOrder(Row(stacked, k, length)), count).Output.CopyTo(masked, k * length);
            string context = $"seed {seed}, n {length}, threads {threads}, k [{string.Join(", ", counts)}]";
            float[] rows = (float[])stacked.Clone();
            MagnitudeSelection?[] selections = Select(rows, length, counts, (row, count) => kernels.SelectTopK(row, count));
            BitAssert.Identical(stacked, rows, context + " (the rows stay as they were)");
            float[] calls = (float[])stacked.Clone();
            for (int k = 0; k < counts.Length; k++)
                if (counts[k] is long count) kernels.KeepTopK(calls.AsSpan(k * length, length), count);
            BitAssert.Identical(masked, calls, context + " (KeepTopK against the sort)");
            CheckSignConsensus(kernels, stacked, masked, selections, length, context);
            CheckWeightedSum(kernels, stacked, masked, selections, length, context);
        }
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void SelectMagnitudeBand_then_the_combines_are_the_masked_rows_combined(int length)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int threads in new[] { 1, 4 })
        {
            var kernels = new CpuKernels(threads);
            float[] stacked = PreScaledCombineTests.Rows(random, s_weights.Length, length);
            (long Bottom, long Top)?[] cuts = BandCuts(random, length);
            float[] masked = (float[])stacked.Clone();
            for (int k = 0; k < cuts.Length; k++)
                if (cuts[k] is var (bottom, top))
                    ScalarReference.Band(Row(stacked, k, length), ScalarReference.AscendingOrder(Row(stacked, k, length)), bottom, top).CopyTo(masked, k * length);
            string context = $"seed {seed}, n {length}, threads {threads}, cuts [{string.Join(", ", cuts)}]";
            float[] rows = (float[])stacked.Clone();
            MagnitudeSelection?[] selections = Select(rows, length, cuts, (row, cut) => kernels.SelectMagnitudeBand(row, cut.Bottom, cut.Top));
            BitAssert.Identical(stacked, rows, context + " (the rows stay as they were)");
            CheckSignConsensus(kernels, stacked, masked, selections, length, context);
            CheckWeightedSum(kernels, stacked, masked, selections, length, context);

            // ApplySelection writes what KeepMagnitudeBand writes.
            for (int k = 0; k < cuts.Length; k++)
                if (selections[k] is { } selection) kernels.ApplySelection(rows.AsSpan(k * length, length), selection);
            BitAssert.Identical(masked, rows, context + " (ApplySelection)");
        }
    }

    [Fact]
    public void Cuts_inside_one_run_of_ties_over_several_chunks_drop_the_right_ties()
    {
        // Every magnitude equal but a few: the cuts fall inside a run of ties that spans every chunk, both band cuts on
        // one key, and a tie boundary at a chunk's first tie.
        const int length = 3 * 65536 + 77;
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var stacked = new float[3 * length];
        for (int i = 0; i < stacked.Length; i++)
            stacked[i] = random.Next(50) == 0 ? 2f : random.Next(2) == 0 ? 1f : -1f;
        foreach (int threads in new[] { 1, 3 })
        {
            var kernels = new CpuKernels(threads);
            (long, long)[] cuts = [(70000, 80000), (65536, 0), (1, length - 2)];
            float[] masked = (float[])stacked.Clone();
            float[] rows = (float[])stacked.Clone();
            var selections = new MagnitudeSelection?[3];
            for (int k = 0; k < 3; k++)
            {
                (long bottom, long top) = cuts[k];
                ScalarReference.Band(Row(stacked, k, length), ScalarReference.AscendingOrder(Row(stacked, k, length)), bottom, top).CopyTo(masked, k * length);
                selections[k] = kernels.SelectMagnitudeBand(rows.AsSpan(k * length, length), bottom, top);
            }
            CheckSignConsensus(kernels, stacked, masked, selections, length, $"seed {seed}, threads {threads}, band");

            long[] counts = [65536 + 5, 2 * 65536, length / 2];
            masked = (float[])stacked.Clone();
            for (int k = 0; k < 3; k++)
            {
                ScalarReference.TopK(Row(stacked, k, length), ScalarReference.DescendingOrder(Row(stacked, k, length)), counts[k]).Output.CopyTo(masked, k * length);
                selections[k] = kernels.SelectTopK(rows.AsSpan(k * length, length), counts[k]);
            }
            CheckWeightedSum(kernels, stacked, masked, selections, length, $"seed {seed}, threads {threads}, top-k");
        }
    }

    [Fact]
    public void The_vector_read_of_a_selected_row_is_the_scalar_read_lane_by_lane()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] values = TestData.WithSpecials(random, TestData.TieHeavy(random, 4096));
        values[0] = -0f;
        values[1] = float.NaN;
        int tied = BitConverter.SingleToInt32Bits(values[2]) & 0x7FFFFFFF;
        (int, int)[] ranges = [(-1, int.MaxValue), (int.MaxValue, int.MaxValue), (tied - 1, tied), (tied, int.MaxValue), (-1, tied - 1), (0, 0x7F800000), (-1, 0)];
        foreach ((int low, int high) in ranges)
            {
                for (int i = 0; i + Vector<float>.Count <= values.Length; i += Vector<float>.Count)
                {
                    Vector<float> lanes = SelectedRow.Load(values, i, low, high);
                    for (int lane = 0; lane < Vector<float>.Count; lane++)
                    {
                        float scalar = SelectedRow.Read(values, i + lane, low, high);
                        Assert.True(BitAssert.Bits(lanes[lane]) == BitAssert.Bits(scalar),
                            $"seed {seed}, range ({low}, {high}], element {i + lane}: vector 0x{BitAssert.Bits(lanes[lane]):X8}, scalar 0x{BitAssert.Bits(scalar):X8}");
                        int key = BitConverter.SingleToInt32Bits(values[i + lane]) & 0x7FFFFFFF;
                        uint expected = key > low && key <= high ? BitAssert.Bits(values[i + lane]) : 0u;
                        Assert.Equal(expected, BitAssert.Bits(scalar));
                    }
                }
            }
    }

    [Fact]
    public void Selections_must_be_none_or_one_per_row_of_the_selected_length()
    {
        var kernels = new CpuKernels(1);
        float[] row = [3f, 1f, 2f, 5f];
        MagnitudeSelection selection = kernels.SelectTopK(row, 2);
        Assert.True(selection.IsDeferred);
        var output = new float[4];
        Assert.Throws<ArgumentException>(() => kernels.SignConsensusMergeOntoBase(new float[8], [1f, 1f], SignElection.Sum, false, 1f,
            new float[4], output, [], [selection]));
        Assert.Throws<ArgumentException>(() => kernels.WeightedSumOntoBase(new float[10], [1f, 1f], 1f, 1f,
            new float[5], new float[5], [], [selection, null]));
        Assert.Throws<ArgumentException>(() => kernels.ApplySelection(new float[5], selection));
        Assert.False(kernels.SelectTopK(row, 4).IsDeferred); // keeps all: nothing left to drop
        Assert.Equal(new[] { 3f, 1f, 2f, 5f }, row);
    }

    private static void CheckSignConsensus(CpuKernels kernels, float[] stacked, float[] masked, MagnitudeSelection?[] selections, int length, string context)
    {
        var random = new System.Random(length);
        float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, length));
        foreach (float[] preScales in s_preScaleSets)
            foreach (SignElection election in new[] { SignElection.Sum, SignElection.Count })
                foreach (bool normalize in new[] { false, true })
                {
                    float lambda = normalize ? 0.7f : 1f;
                    string what = $"{context}, pre-scales [{string.Join(", ", preScales)}], {election}, normalize {normalize}";
                    float[] scaled = preScales.Length == 0 ? masked : ScalarReference.PreScaled(masked, preScales, length);
                    float[] expected = ScalarReference.SignConsensusOntoBase(scaled, s_weights, election, normalize, lambda, baseline, length);
                    var fused = new float[length];
                    kernels.SignConsensusMergeOntoBase(stacked, s_weights, election, normalize, lambda, baseline, fused, preScales, selections);
                    BitAssert.Equal(expected, fused, what);
                    var calls = new float[length];
                    kernels.SignConsensusMergeOntoBase(masked, s_weights, election, normalize, lambda, baseline, calls, preScales);
                    BitAssert.Equal(calls, fused, what + " (masked rows, then the plain merge)");
                }
    }

    private static void CheckWeightedSum(CpuKernels kernels, float[] stacked, float[] masked, MagnitudeSelection?[] selections, int length, string context)
    {
        var random = new System.Random(length + 1);
        float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, length));
        foreach (float[] preScales in s_preScaleSets)
            foreach ((float divisor, float lambda) in new[] { (1f, 1f), (1.2f, 0.7f) })
            {
                string what = $"{context}, pre-scales [{string.Join(", ", preScales)}], divisor {divisor}, λ {lambda}";
                float[] scaled = preScales.Length == 0 ? masked : ScalarReference.PreScaled(masked, preScales, length);
                float[] expected = ScalarReference.WeightedSumOntoBase(scaled, s_weights, divisor, lambda, baseline, length);
                var fused = new float[length];
                kernels.WeightedSumOntoBase(stacked, s_weights, divisor, lambda, baseline, fused, preScales, selections);
                BitAssert.Equal(expected, fused, what);
                var calls = new float[length];
                kernels.WeightedSumOntoBase(masked, s_weights, divisor, lambda, baseline, calls, preScales);
                BitAssert.Equal(calls, fused, what + " (masked rows, then the plain sum)");
            }
    }

    private static MagnitudeSelection?[] Select<T>(float[] rows, int length, T?[] parameters, Func<Span<float>, T, MagnitudeSelection> select)
        where T : struct
    {
        var selections = new MagnitudeSelection?[parameters.Length];
        for (int k = 0; k < parameters.Length; k++)
            if (parameters[k] is T parameter)
                selections[k] = select(rows.AsSpan(k * length, length), parameter);
        return selections;
    }

    private static float[] Row(float[] stacked, int k, int length) => stacked.AsSpan(k * length, length).ToArray();
}
