using System.Runtime.Intrinsics;
using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>
/// Arcee Fusion's per-row divergence D (<see cref="SoftmaxDivergence"/>, <see cref="IMergeKernels.SoftmaxDivergences"/>)
/// and the gate that forms the scores from it: both vector widths (eight float64 lanes where AVX-512 runs them, four
/// elsewhere; .NET runs the wide code in software where the hardware lacks it, so both are checked on any machine)
/// against the scalar fdlibm reference, bit for bit; the gate against gating the stored scores.
/// </summary>
public sealed class SoftmaxDivergenceTests
{
    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    [Fact]
    public void Divergence_at_both_widths_equals_the_reference_row_by_row()
    {
        int seed = TestData.NewSeed();
        ForEachRows(seed, (context, model, baseline, rowLength) =>
        {
            float[] expected = InterpolationScalarReference.SoftmaxDivergencesFdlibm(model, baseline, rowLength);
            var exponentials = new double[2 * rowLength];
            var narrow = new float[expected.Length];
            var wide = new float[expected.Length];
            for (int row = 0; row < expected.Length; row++)
            {
                ReadOnlySpan<float> modelRow = model.AsSpan(row * rowLength, rowLength), baseRow = baseline.AsSpan(row * rowLength, rowLength);
                narrow[row] = SoftmaxDivergence.DivergenceNarrow(modelRow, baseRow, exponentials);
                wide[row] = SoftmaxDivergence.DivergenceWide(modelRow, baseRow, exponentials);
            }
            BitAssert.Equal(expected, narrow, context + ", Vector256");
            BitAssert.Equal(expected, wide, context + ", Vector512");
        });
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SoftmaxDivergences_match_the_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        ForEachRows(TestData.NewSeed(), (context, model, baseline, rowLength) =>
        {
            var divergences = new float[model.Length / rowLength];
            kernels.SoftmaxDivergences(model, baseline, divergences);
            BitAssert.Equal(InterpolationScalarReference.SoftmaxDivergencesFdlibm(model, baseline, rowLength), divergences, context);
        });
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void Gate_with_divergences_equals_gating_the_scores(int threads)
    {
        var kernels = new CpuKernels(threads);
        var random = new System.Random(TestData.NewSeed());
        // Rows across the 64K-element chunks the gate runs in, and rows longer than a chunk.
        foreach ((int rows, int rowLength) in new[] { (1, 1), (3, 7), (40, 2048), (3, 65537), (1, 200003) })
        {
            (float[] model, float[] baseline) = InterpolationInputs.WeightRows(random, rows, rowLength);
            var scores = new float[model.Length];
            kernels.SoftmaxDivergenceScores(model, baseline, rowLength, scores);
            var divergences = new float[rows];
            kernels.SoftmaxDivergences(model, baseline, divergences);
            float median = scores.Order().ElementAt(scores.Length / 2);
            foreach (float threshold in InterpolationInputs.Thresholds.Append(median))
            {
                float[] expected = (float[])scores.Clone();
                kernels.KeepImportantChanges(baseline, model, threshold, expected);
                var merged = new float[model.Length];
                kernels.KeepImportantChanges(baseline, model, divergences, threshold, merged);
                BitAssert.Identical(expected, merged, $"rows {rows} × {rowLength}, threshold {threshold}");
            }
        }
    }

    [Fact]
    public void Mismatched_lengths_throw()
    {
        var kernels = new CpuKernels(1);
        Assert.Throws<ArgumentException>(() => kernels.SoftmaxDivergences(new float[6], new float[6], new float[4]));
        Assert.Throws<ArgumentException>(() => kernels.SoftmaxDivergences(new float[6], new float[5], new float[2]));
        Assert.Throws<ArgumentException>(() => kernels.SoftmaxDivergences(new float[6], new float[6], new float[0]));
        Assert.Throws<ArgumentException>(() => kernels.KeepImportantChanges(new float[6], new float[6], new float[4], 0f, new float[6]));
        Assert.Throws<ArgumentException>(() => kernels.KeepImportantChanges(new float[6], new float[5], new float[2], 0f, new float[6]));
    }

    /// <summary>The score tests' inputs (specials, ties, odd row lengths) and rows like a model's weights.</summary>
    internal static void ForEachRows(int seed, Action<string, float[], float[], int> check)
    {
        InterpolationInputs.ForEachScoreRows(seed, check);
        var random = new System.Random(seed);
        foreach ((int rows, int rowLength) in new[] { (10, 2048), (10, 37), (5, 8192) })
        {
            (float[] model, float[] baseline) = InterpolationInputs.WeightRows(random, rows, rowLength);
            check($"seed {seed}, weight rows {rows} × {rowLength}", model, baseline, rowLength);
        }
    }
}
