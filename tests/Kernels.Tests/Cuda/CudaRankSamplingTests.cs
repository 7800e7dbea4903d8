using Weld.Kernels.Cuda;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>
/// DELLA's magnitude-rank sampling on the GPU (<c>dare.cu</c>) against <see cref="RankSamplingScalarReference"/>: fibers
/// sorted in shared memory and fibers longer than the tile (ranked by counting), strided layouts, NaN/±∞ and ties.
/// Bit for bit. Skipped without a device.
/// </summary>
public sealed class CudaRankSamplingTests
{
    [CudaFact]
    public void SampleByMagnitudeRank_matches_reference()
    {
        int seed = TestData.NewSeed();
        var key = new PhiloxKey((ulong)seed * 0x9E3779B97F4A7C15ul, (uint)seed ^ 0xA5A5A5A5u, 3);
        RankSamplingInputs.ForEach(seed, [.. RankSamplingInputs.Layouts, .. RankSamplingInputs.LongLayouts], (context, values, length, stride) =>
        {
            int[] positions = RankSamplingScalarReference.SortedPositions(values, length, stride);
            foreach ((float low, float epsilon, float single, bool divide) in RankSamplingInputs.Settings)
            {
                float[] expected = RankSamplingScalarReference.Sample(values, positions, length, low, epsilon, single, divide, key);
                float[] actual = (float[])values.Clone();
                CudaBackend.Instance.SampleByMagnitudeRank(actual, length, stride, low, epsilon, single, divide, key);
                BitAssert.Identical(expected, actual, $"{context}, low {low}, ε {epsilon}, divide {divide}");
            }
        });
    }
}
