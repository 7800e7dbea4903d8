using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests;

/// <summary>The interpolation CPU kernels against <see cref="InterpolationScalarReference"/>, on one thread and on all.</summary>
public sealed class InterpolationKernelsTests
{
    public static TheoryData<int> ThreadCounts() => new() { 1, -1 };

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void ScaleFromBase_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (float scale in InterpolationInputs.Scales)
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], merged = stacked[n..];
                float[] expected = InterpolationScalarReference.ScaleFromBase(baseline, merged, scale);
                kernels.ScaleFromBase(baseline, merged, scale);
                BitAssert.Equal(expected, merged, $"{context}, scale {scale}");
            });
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void KeepImportantChanges_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        int seed = TestData.NewSeed();
        foreach (float threshold in InterpolationInputs.Thresholds)
        {
            MethodKernelInputs.ForEach(seed, 3, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], model = stacked[n..(2 * n)], scores = stacked[(2 * n)..];
                float[] expected = InterpolationScalarReference.KeepImportantChanges(baseline, model, threshold, scores);
                kernels.KeepImportantChanges(baseline, model, threshold, scores);
                BitAssert.Equal(expected, scores, $"{context}, threshold {threshold}");
            });
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void AxpbyRows_matches_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        InterpolationInputs.ForEachRowMix(TestData.NewSeed(), (context, values, baseline, valueWeights, baseWeights) =>
        {
            float[] expected = InterpolationScalarReference.AxpbyRows(values, valueWeights, baseline, baseWeights);
            kernels.AxpbyRows(values, valueWeights, baseline, baseWeights);
            BitAssert.Equal(expected, values, context);
        });
    }

    [Theory]
    [MemberData(nameof(ThreadCounts))]
    public void SoftmaxDivergenceScores_match_reference_bit_for_bit(int threads)
    {
        var kernels = new CpuKernels(threads);
        InterpolationInputs.ForEachScoreRows(TestData.NewSeed(), (context, model, baseline, rowLength) =>
        {
            var scores = new float[model.Length];
            kernels.SoftmaxDivergenceScores(model, baseline, rowLength, scores);
            BitAssert.Equal(InterpolationScalarReference.SoftmaxDivergenceScoresFdlibm(model, baseline, rowLength), scores, context);
            // The contract's allowance for the backend's exp and log: .NET's (the C library's) give these within 4 ulps.
            BitAssert.WithinUlps(InterpolationScalarReference.SoftmaxDivergenceScores(model, baseline, rowLength), scores, 4, context + " vs .NET's exp and log");
        });
    }

    [Fact]
    public void SoftmaxDivergenceScores_of_equal_distributions_are_zero()
    {
        // Logits shifted by a constant have the same softmax: D = 0, so every score is +0 (|Δ| · 0).
        var kernels = new CpuKernels(1);
        float[] model = [1f, 2f, 3f, 4f], baseline = [11f, 12f, 13f, 14f];
        var scores = new float[4];
        kernels.SoftmaxDivergenceScores(model, baseline, 4, scores);
        BitAssert.Identical([0f, 0f, 0f, 0f], scores, "shifted logits");
    }

    [Fact]
    public void AxpbyRows_uses_each_rows_own_weights()
    {
        var kernels = new CpuKernels(1);
        float[] values = [1f, 2f, 3f, 4f, 5f, 6f];
        float[] baseline = [10f, 20f, 30f, 40f, 50f, 60f];
        kernels.AxpbyRows(values, [1f, 0f, 0.5f], baseline, [0f, 1f, 0.5f]);
        BitAssert.Identical([1f, 2f, 30f, 40f, 27.5f, 33f], values, "hand-made");
    }

    [Fact]
    public void Mismatched_lengths_throw()
    {
        var kernels = new CpuKernels(1);
        Assert.Throws<ArgumentException>(() => kernels.ScaleFromBase(new float[3], new float[4], 0.5f));
        Assert.Throws<ArgumentException>(() => kernels.KeepImportantChanges(new float[3], new float[4], 0f, new float[3]));
        Assert.Throws<ArgumentException>(() => kernels.KeepImportantChanges(new float[4], new float[3], 0f, new float[3]));
        Assert.Throws<ArgumentException>(() => kernels.SoftmaxDivergenceScores(new float[6], new float[6], 4, new float[6]));
        Assert.Throws<ArgumentException>(() => kernels.SoftmaxDivergenceScores(new float[6], new float[6], 0, new float[6]));
        Assert.Throws<ArgumentException>(() => kernels.SoftmaxDivergenceScores(new float[6], new float[5], 3, new float[6]));
        Assert.Throws<ArgumentException>(() => kernels.AxpbyRows(new float[6], [1f, 1f], new float[5], [0f, 0f]));
        Assert.Throws<ArgumentException>(() => kernels.AxpbyRows(new float[6], [1f, 1f], new float[6], [0f]));
        Assert.Throws<ArgumentException>(() => kernels.AxpbyRows(new float[7], [1f, 1f], new float[7], [0f, 0f]));
        Assert.Throws<ArgumentException>(() => kernels.AxpbyRows(new float[2], [], new float[2], []));
    }
}
