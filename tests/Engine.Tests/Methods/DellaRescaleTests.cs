using Weld.Engine.Methods;
using Weld.Kernels;
using Xunit;
using static Weld.Engine.Tests.Methods.MethodHarness;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// DELLA with mergekit's L1 rescale (the default) against its steps spelled out one kernel call at a time:
/// δ_k = θ_k − θ_base; ‖δ_k‖₁ summed per 2^20-element block; MagPrune over the whole row; ‖magprune(δ_k)‖₁ the same
/// way; δ_k · (before / after) when both norms are ≥ 1e-7; then TIES' election onto the base (della, normalized) or
/// the weighted sum plus the base (della_linear). The method samples each block between its two norms while it is in
/// cache when the [dim 1 × rest] slices tile the blocks: the bits must not move.
/// </summary>
public sealed class DellaRescaleTests
{
    private static readonly IMergeKernels Cpu = MethodHarness.Kernels;

    [Theory]
    [InlineData("della", new long[] { 1166, 2048 })] // two 2^20 blocks and a tail: the norms add block by block
    [InlineData("della_linear", new long[] { 1166, 2048 })]
    [InlineData("della", new long[] { 300, 1024, 4 })] // strided fibers, slabs of 4,096
    [InlineData("della", new long[] { 37, 53 })] // slabs that do not tile a block: the steps one by one
    public void L1_rescaled_magprune_equals_the_steps_one_by_one(string methodName, long[] shape)
    {
        IMergeMethod method = MergeMethods.Find(methodName)!;
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        double[] densities = [0.3, 0.5, 0.7];
        double[] epsilons = [0.1, 0.15, 0.2];
        float[] weights = [0.5f, 0.3f, 0.4f];
        var (baseline, models) = RandomModels(seed: n % 991, n, k: 3, deltaScale: 0.006f);

        float[] actual = Run(method, baseline, models.Select(m => (float[])m.Clone()).ToArray(), shape,
            (m, p) => p.Set("weight", (double)weights[m]).Set("density", densities[m]).Set("epsilon", epsilons[m]));

        var stacked = new float[3 * n];
        for (int m = 0; m < 3; m++) models[m].CopyTo(stacked, m * n);
        Cpu.SubtractRows(stacked, baseline);
        int length = (int)shape[1], inner = n / ((int)shape[0] * length);
        for (int m = 0; m < 3; m++)
        {
            Span<float> row = stacked.AsSpan(m * n, n);
            double before = BlockwiseL1(row);
            Cpu.SampleByMagnitudeRank(row, length, inner, (float)(densities[m] - epsilons[m]), (float)epsilons[m],
                (float)densities[m], false, Key(m));
            double after = BlockwiseL1(row);
            if ((float)before >= 1e-7f && (float)after >= 1e-7f)
                Cpu.Scale(row, (float)before / (float)after);
        }
        var expected = new float[n];
        if (methodName == "della")
            Cpu.SignConsensusMergeOntoBase(stacked, weights, SignElection.Sum, true, 1f, baseline, expected);
        else
        {
            Cpu.WeightedSum(stacked, weights, expected);
            Cpu.Axpby(1f, baseline, 1f, expected, expected);
        }
        AssertBits(expected, actual, $"{methodName}, shape [{string.Join(", ", shape)}]");
        Assert.NotEqual(expected, baseline); // something was merged
    }

    private static double BlockwiseL1(ReadOnlySpan<float> values)
    {
        double sum = 0;
        for (int start = 0; start < values.Length; start += TensorMergeInputs.ChunkAlignment)
            sum += Cpu.SumOfAbs(values.Slice(start, Math.Min(TensorMergeInputs.ChunkAlignment, values.Length - start)));
        return sum;
    }
}
