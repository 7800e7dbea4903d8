using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU combine kernels onto a base with per-row pre-scales against their scalar references and the CPU backend, bit
/// for bit: NaN, ±∞ and extreme factors, odd sizes, every accelerator shape.
/// </summary>
public sealed class PreScaledCombineKernelTests
{
    private static readonly int[] s_sizes = [1, 7, 17, 65, 1000, 4099];
    private static readonly float[][] s_preScaleSets = [[], [1.4285715f, 1f, 0.93f], [float.NaN, float.PositiveInfinity, 0f], [-0.5f, 1e-30f, 1e30f]];
    private static readonly float[][] s_weightSets = [[0.5f, 0.3f, 0.4f], [1f, -0.5f, 0f], [float.PositiveInfinity, 1f, 1f]];
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SignConsensusMergeOntoBase_with_pre_scales_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
            foreach (float[] weights in s_weightSets)
            {
                float[] stacked = PreScaledCombineTests.Rows(random, weights.Length, n);
                float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, n));
                foreach (float[] preScales in s_preScaleSets)
                    foreach (SignElection election in new[] { SignElection.Sum, SignElection.Count })
                        foreach (bool normalize in new[] { false, true })
                        {
                            const float lambda = 0.7f;
                            string context = $"{shape} seed {seed} n {n} weights [{string.Join(", ", weights)}] pre-scales [{string.Join(", ", preScales)}] {election} normalize {normalize}";
                            float[] scaled = preScales.Length == 0 ? stacked : ScalarReference.PreScaled(stacked, preScales, n);
                            float[] expected = ScalarReference.SignConsensusOntoBase(scaled, weights, election, normalize, lambda, baseline, n);
                            var cpu = new float[n];
                            var actual = new float[n];
                            _cpu.SignConsensusMergeOntoBase(stacked, weights, election, normalize, lambda, baseline, cpu, preScales);
                            gpu.SignConsensusMergeOntoBase(stacked, weights, election, normalize, lambda, baseline, actual, preScales);
                            BitAssert.Equal(expected, actual, context + " vs reference");
                            BitAssert.Equal(cpu, actual, context + " vs cpu");
                        }
            }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void WeightedSumOntoBase_matches_reference_and_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
            foreach (float[] weights in s_weightSets)
            {
                float[] stacked = PreScaledCombineTests.Rows(random, weights.Length, n);
                float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, n));
                foreach (float[] preScales in s_preScaleSets)
                    foreach ((float divisor, float lambda) in new[] { (1f, 1f), (1.2f, 0.7f), (0f, -2.5f) })
                    {
                        string context = $"{shape} seed {seed} n {n} weights [{string.Join(", ", weights)}] pre-scales [{string.Join(", ", preScales)}] divisor {divisor} λ {lambda}";
                        float[] scaled = preScales.Length == 0 ? stacked : ScalarReference.PreScaled(stacked, preScales, n);
                        float[] expected = ScalarReference.WeightedSumOntoBase(scaled, weights, divisor, lambda, baseline, n);
                        var cpu = new float[n];
                        var actual = new float[n];
                        _cpu.WeightedSumOntoBase(stacked, weights, divisor, lambda, baseline, cpu, preScales);
                        gpu.WeightedSumOntoBase(stacked, weights, divisor, lambda, baseline, actual, preScales);
                        BitAssert.Equal(expected, actual, context + " vs reference");
                        BitAssert.Equal(cpu, actual, context + " vs cpu");
                    }
            }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Pre_scales_must_be_none_or_one_per_row(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        Assert.Throws<ArgumentException>(() => gpu.WeightedSumOntoBase(new float[4], [1f, 1f], 1f, 1f, new float[2], new float[2], [2f]));
        Assert.Throws<ArgumentException>(() =>
            gpu.SignConsensusMergeOntoBase(new float[4], [1f, 1f], SignElection.Sum, false, 1f, new float[2], new float[2], [2f, 1f, 1f]));
        gpu.WeightedSumOntoBase([], [1f, 1f], 1f, 1f, [], []);
    }
}
