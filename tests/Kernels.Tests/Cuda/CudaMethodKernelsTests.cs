using Weld.Kernels.Cuda;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>
/// The newer methods' CUDA kernels (<c>methods.cu</c>) against <see cref="MethodScalarReference"/> on fresh random
/// inputs: odd sizes, more than one 64K chunk, NaN/±∞ and exact ties. Bit for bit (any NaN matching any NaN; the
/// MagMax selection copies values, so there payloads too). Skipped without a device.
/// </summary>
public sealed class CudaMethodKernelsTests
{
    private static readonly int[] s_sizes = [1, 7, 1024, 4099, 65537, 200003];

    private static CudaKernels Gpu => CudaBackend.Instance;

    [CudaFact]
    public void SelectLargestMagnitude_matches_reference()
    {
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 2, 3, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                var actual = new float[n];
                Gpu.SelectLargestMagnitude(stacked, actual);
                BitAssert.Identical(MethodScalarReference.LargestMagnitude(stacked, rows, n), actual, context);
            }, s_sizes);
        }
    }

    [CudaFact]
    public void TallMask_matches_reference()
    {
        int seed = TestData.NewSeed();
        foreach (float lambda in new[] { 0f, 0.4f, 1f })
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] task = stacked[..n], multiTask = stacked[n..];
                (byte[] expected, long expectedSet) = MethodScalarReference.TallMask(task, multiTask, lambda);
                byte[] actual = Enumerable.Repeat((byte)0xA5, expected.Length).ToArray();
                long set = Gpu.TallMask(task, multiTask, lambda, actual);
                MethodKernelInputs.SameBytes(expected, actual, $"{context}, λ {lambda}");
                Assert.Equal(expectedSet, set);
            }, s_sizes);
        }
    }

    [CudaFact]
    public void TallRestore_matches_reference()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
        {
            float[] baseline = stacked[..n], multiTask = stacked[n..];
            var packed = new byte[(n + 7) / 8];
            random.NextBytes(packed);
            var actual = new float[n];
            Gpu.TallRestore(baseline, multiTask, packed, actual);
            BitAssert.Equal(MethodScalarReference.TallRestore(baseline, multiTask, packed), actual, context);
        }, s_sizes);
    }

    [CudaFact]
    public void ConsensusMerge_matches_reference()
    {
        int seed = TestData.NewSeed();
        float[][] lambdaSets = [[0.4f], [0.2f, 1f, 0f], [0.5f, 0.6f, 0.3f, 1f, 0.4f]];
        foreach (float[] lambdas in lambdaSets)
        {
            foreach (int minAgreeing in new[] { 0, 2 })
            {
                MethodKernelInputs.ForEach(seed + lambdas.Length, lambdas.Length, (context, stacked, n) =>
                {
                    var actual = new float[n];
                    Gpu.ConsensusMerge(stacked, lambdas, minAgreeing, actual);
                    BitAssert.Equal(MethodScalarReference.Consensus(stacked, lambdas, minAgreeing, n), actual, $"{context}, k {minAgreeing}");
                }, s_sizes);
            }
        }
    }

    [CudaFact]
    public void FisherMerge_matches_reference()
    {
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.3f, 2f, 0f]];
        foreach (float[] weights in weightSets)
        {
            MethodKernelInputs.ForEach(seed + weights.Length, 2 * weights.Length, (context, stacked, n) =>
            {
                float[] models = stacked[..(weights.Length * n)], fisher = stacked[(weights.Length * n)..];
                var actual = new float[n];
                Gpu.FisherMerge(models, fisher, weights, 1e-8f, actual);
                BitAssert.Equal(MethodScalarReference.Fisher(models, fisher, weights, 1e-8f, n), actual, context);
            }, s_sizes);
        }
    }

    [CudaFact]
    public void NearSwap_matches_reference()
    {
        int seed = TestData.NewSeed();
        foreach (float t in new[] { 0.001f, 0.5f, 1e30f })
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] v0 = stacked[..n], v1 = stacked[n..];
                var actual = new float[n];
                Gpu.NearSwap(v0, v1, t, actual);
                BitAssert.Equal(MethodScalarReference.NearSwap(v0, v1, t), actual, $"{context}, t {t}");
            }, s_sizes);
        }
    }

    [CudaFact]
    public void RamMerge_and_counts_match_reference()
    {
        int seed = TestData.NewSeed();
        float[][] scaleSets = [[1f], [1.02f, 1f, 1.2f]];
        foreach (float[] scales in scaleSets)
        {
            foreach (float epsilon in new[] { 1e-5f, 0.004f })
            {
                int rows = scales.Length;
                MethodKernelInputs.ForEach(seed + rows, rows + 1, (context, stacked, n) =>
                {
                    float[] baseline = stacked[..n], deltas = stacked[n..];
                    var actual = new float[n];
                    Gpu.RamMerge(deltas, baseline, scales, epsilon, actual);
                    BitAssert.Equal(MethodScalarReference.Ram(deltas, baseline, scales, epsilon), actual, $"{context}, ε {epsilon}");

                    (long[] shared, long[] unique) = MethodScalarReference.RamCounts(deltas, rows, epsilon);
                    long[] actualShared = new long[rows], actualUnique = new long[rows];
                    Gpu.RamContributionCounts(deltas, epsilon, actualShared, actualUnique);
                    MethodKernelInputs.SameCounts(shared, actualShared, $"{context}, ε {epsilon} shared");
                    MethodKernelInputs.SameCounts(unique, actualUnique, $"{context}, ε {epsilon} unique");
                }, s_sizes);
            }
        }
    }

    [CudaFact]
    public void VarianceAcrossRows_and_ClearRowsWhereZero_match_reference()
    {
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 3, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                (float[] expected, long expectedNonzero) = MethodScalarReference.Variance(stacked, rows, n);
                var actual = new float[n];
                long nonzero = Gpu.VarianceAcrossRows(stacked, actual);
                BitAssert.Equal(expected, actual, context);
                Assert.Equal(expectedNonzero, nonzero);

                float[] selector = stacked[..n];
                float[] cleared = (float[])stacked.Clone();
                Gpu.ClearRowsWhereZero(cleared, selector);
                BitAssert.Identical(MethodScalarReference.ClearRowsWhereZero(stacked, selector), cleared, context + " clear");
            }, s_sizes);
        }
    }

    [CudaFact]
    public void SignErasedMix_matches_reference()
    {
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.2f, 0.7f, 0.1f], [0f, 0f, 0f]];
        foreach (float[] weights in weightSets)
        {
            MethodKernelInputs.ForEach(seed + weights.Length, weights.Length, (context, stacked, n) =>
            {
                var actual = new float[n];
                Gpu.SignErasedMix(stacked, weights, 1e-6f, actual);
                BitAssert.Equal(MethodScalarReference.SignErasedMix(stacked, weights, 1e-6f, n), actual, context);
            }, s_sizes);
        }
    }
}
