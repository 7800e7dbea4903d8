using Weld.Kernels.Cuda;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>
/// The interpolation CUDA kernels (<c>interpolate.cu</c>) against <see cref="InterpolationScalarReference"/> on fresh
/// random inputs: odd sizes, more than one 64K chunk, NaN/±∞ and ties. Bit for bit. Skipped without a device.
/// </summary>
public sealed class CudaInterpolationKernelsTests
{
    private static readonly int[] s_sizes = [1, 7, 1024, 4099, 65537, 200003];

    private static CudaKernels Gpu => CudaBackend.Instance;

    [CudaFact]
    public void ScaleFromBase_matches_reference()
    {
        int seed = TestData.NewSeed();
        foreach (float scale in InterpolationInputs.Scales)
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], merged = stacked[n..];
                float[] expected = InterpolationScalarReference.ScaleFromBase(baseline, merged, scale);
                Gpu.ScaleFromBase(baseline, merged, scale);
                BitAssert.Equal(expected, merged, $"{context}, scale {scale}");
            }, s_sizes);
        }
    }

    [CudaFact]
    public void KeepImportantChanges_matches_reference()
    {
        int seed = TestData.NewSeed();
        foreach (float threshold in InterpolationInputs.Thresholds)
        {
            MethodKernelInputs.ForEach(seed, 3, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], model = stacked[n..(2 * n)], scores = stacked[(2 * n)..];
                float[] expected = InterpolationScalarReference.KeepImportantChanges(baseline, model, threshold, scores);
                Gpu.KeepImportantChanges(baseline, model, threshold, scores);
                BitAssert.Equal(expected, scores, $"{context}, threshold {threshold}");
            }, s_sizes);
        }
    }

    [CudaFact]
    public void AxpbyRows_matches_reference()
    {
        InterpolationInputs.ForEachRowMix(TestData.NewSeed(), (context, values, baseline, valueWeights, baseWeights) =>
        {
            float[] expected = InterpolationScalarReference.AxpbyRows(values, valueWeights, baseline, baseWeights);
            Gpu.AxpbyRows(values, valueWeights, baseline, baseWeights);
            BitAssert.Equal(expected, values, context);
        });
    }

    /// <summary>
    /// CUDA's float64 exp and log are not the CPU library's, so the contract allows the last bits to differ: each
    /// score must be within 4 float32 ulps of the reference (NaN where it is NaN, ±∞ and zeros exactly).
    /// </summary>
    [CudaFact]
    public void SoftmaxDivergenceScores_match_reference_to_the_last_bits()
    {
        InterpolationInputs.ForEachScoreRows(TestData.NewSeed(), (context, model, baseline, rowLength) =>
        {
            float[] expected = InterpolationScalarReference.SoftmaxDivergenceScores(model, baseline, rowLength);
            var actual = new float[model.Length];
            Gpu.SoftmaxDivergenceScores(model, baseline, rowLength, actual);
            for (int i = 0; i < expected.Length; i++)
            {
                bool close = float.IsNaN(expected[i]) ? float.IsNaN(actual[i])
                    : !float.IsFinite(expected[i]) || expected[i] == 0f ? BitAssert.Same(expected[i], actual[i])
                    : Math.Sign(expected[i]) == Math.Sign(actual[i])
                        && Math.Abs((long)BitAssert.Bits(expected[i]) - BitAssert.Bits(actual[i])) <= 4;
                Xunit.Assert.True(close, $"{context}: score {i} is {actual[i]:R}, expected {expected[i]:R}");
            }
        });
    }
}
