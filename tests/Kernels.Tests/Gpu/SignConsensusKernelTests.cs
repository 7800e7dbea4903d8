using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU TIES kernel (sign election + disjoint merge) against its scalar reference and the CPU backend, bit for
/// bit: K = 0..20 models, Sum and Count elections, normalize on and off, zeros and NaN that never agree, NaN sums
/// that elect −1, weights that cancel to a divisor of 0, on every accelerator shape.
/// </summary>
public sealed class SignConsensusKernelTests
{
    private static readonly int[] s_sizes = [1, 7, 17, 65, 1000, 4099];
    private readonly CpuKernels _cpu = new(2);

    public static TheoryData<string, SignElection, bool> Cases()
    {
        var data = new TheoryData<string, SignElection, bool>();
        foreach (string shape in GpuShapes.All)
            foreach (SignElection election in new[] { SignElection.Sum, SignElection.Count })
                foreach (bool normalize in new[] { true, false })
                    data.Add(shape, election, normalize);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SignConsensusMerge_matches_reference_and_cpu_for_1_to_20_models(string shape, SignElection election, bool normalize)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[] weightPalette = [1f, 0.3f, -0.5f, 0f, 0.7f, 2f, -1f, 0.25f, 1e-30f];
        for (int models = 0; models <= 20; models++)
        {
            // Small sizes for every K; the larger ones for a few K, on both sides of the old 16-model register path.
            foreach (int n in s_sizes)
            {
                if (n > 100 && models is not (1 or 3 or 16 or 17 or 20))
                    continue;
                var weights = new float[models];
                for (int k = 0; k < models; k++)
                    weights[k] = weightPalette[random.Next(weightPalette.Length)];
                string kind = random.Next(2) == 0 ? "plain" : "ties+specials";
                var stacked = new float[models * n];
                for (int k = 0; k < models; k++)
                {
                    float[] row = kind == "plain"
                        ? TestData.Plain(random, n)
                        : TestData.WithSpecials(random, TestData.TieHeavy(random, n));
                    row.CopyTo(stacked, k * n);
                }

                Check(gpu, stacked, weights, election, normalize, n,
                    $"{shape} seed {seed} K={models} n={n} {kind} weights [{string.Join(", ", weights)}] {election} normalize {normalize}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SignConsensusMerge_edge_weights_match_reference_and_cpu(string shape, SignElection election, bool normalize)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        float[][] weightSets =
        [
            [1f, -1f],                          // opposite weights: agreeing weights can sum to a divisor of 0
            [float.PositiveInfinity, 1f, 1f],   // ∞·0 = NaN deltas
            [0f, 0f, 0f],                       // nothing agrees: +0 (divided by 1)
            [1e30f, 1e30f, -1e30f, 1e30f],      // sums that overflow to ∞
        ];
        const int n = 517;
        foreach (float[] weights in weightSets)
        {
            var stacked = new float[weights.Length * n];
            for (int k = 0; k < weights.Length; k++)
                TestData.WithSpecials(random, TestData.TieHeavy(random, n)).CopyTo(stacked, k * n);
            // Equal deltas under opposite weights: d_0 = −d_1, the Sum election sees exactly 0 and elects +.
            if (weights.Length == 2)
                Array.Copy(stacked, 0, stacked, n, n);
            Check(gpu, stacked, weights, election, normalize, n,
                $"{shape} seed {seed} weights [{string.Join(", ", weights)}] {election} normalize {normalize}");
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SignConsensusMerge_rejects_bad_arguments(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.SignConsensusMerge(new float[4], [1f, 1f], (SignElection)7, false, new float[2]));
        Assert.Throws<ArgumentException>(() => gpu.SignConsensusMerge(new float[5], [1f, 1f], SignElection.Sum, false, new float[2]));
        gpu.SignConsensusMerge([], [1f, 1f], SignElection.Sum, true, []);
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void NaN_never_agrees_and_a_NaN_sum_elects_negative(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        // Column 0: NaN makes the Sum election −1; the −2 is the only agreeing delta. Column 1: +0 and −0 never agree.
        float[] stacked = [float.NaN, 0f, -2f, -0f, 3f, 1f];
        float[] weights = [1f, 1f, 1f];
        var output = new float[2];
        gpu.SignConsensusMerge(stacked, weights, SignElection.Sum, false, output);
        Assert.Equal(-2f, output[0]);
        Assert.Equal(1f, output[1]);
        gpu.SignConsensusMerge(stacked, weights, SignElection.Count, true, output);
        Assert.Equal(3f, output[0]);
        Assert.Equal(1f, output[1]);
    }

    private void Check(GpuKernels gpu, float[] stacked, float[] weights, SignElection election, bool normalize, int n, string context)
    {
        float[] expected = ScalarReference.SignConsensus(stacked, weights, election, normalize, n);
        var cpu = new float[n];
        var actual = new float[n];
        _cpu.SignConsensusMerge(stacked, weights, election, normalize, cpu);
        gpu.SignConsensusMerge(stacked, weights, election, normalize, actual);
        BitAssert.Equal(expected, actual, context + " vs reference");
        BitAssert.Equal(cpu, actual, context + " vs cpu");

        // The fused finish (λ, then the base added), against its reference and the CPU's.
        var random = new System.Random(n * 31 + weights.Length);
        float[] baseline = TestData.WithSpecials(random, TestData.Plain(random, n));
        foreach (float lambda in new[] { 1f, 0.7f, -3f })
        {
            float[] onto = ScalarReference.SignConsensusOntoBase(stacked, weights, election, normalize, lambda, baseline, n);
            var cpuOnto = new float[n];
            var gpuOnto = new float[n];
            _cpu.SignConsensusMergeOntoBase(stacked, weights, election, normalize, lambda, baseline, cpuOnto);
            gpu.SignConsensusMergeOntoBase(stacked, weights, election, normalize, lambda, baseline, gpuOnto);
            BitAssert.Equal(onto, gpuOnto, $"{context} λ {lambda} onto the base vs reference");
            BitAssert.Equal(cpuOnto, gpuOnto, $"{context} λ {lambda} onto the base vs cpu");
        }
    }
}
