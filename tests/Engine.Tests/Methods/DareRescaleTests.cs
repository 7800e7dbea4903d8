using Weld.Engine.Methods;
using Weld.Kernels;
using Xunit;
using static Weld.Engine.Tests.Methods.MethodHarness;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// DARE with mergekit's L1 rescale (the default) against its steps spelled out one kernel call at a time:
/// δ_k = θ_k − θ_base; ‖δ_k‖₁ summed per 2^20-element block; the drop; ‖drop(δ_k)‖₁ the same way; δ_k · (before / after)
/// when both norms are ≥ 1e-7; then TIES' election onto the base or the weighted sum plus the base. The method fuses the
/// drop with both norms (one trip over memory): the bits must not move.
/// </summary>
public sealed class DareRescaleTests
{
    private static readonly IMergeKernels Cpu = MethodHarness.Kernels;

    [Theory]
    [InlineData("dare_ties", 2_386_547)] // three 2^20 blocks and a tail: the norms add block by block
    [InlineData("dare_linear", 2_386_547)]
    [InlineData("dare_ties", 1001)]
    public void L1_rescaled_drop_equals_the_steps_one_by_one(string methodName, int n)
    {
        IMergeMethod method = MergeMethods.Find(methodName)!;
        float[] densities = [0.3f, 0.5f, 0.9f];
        float[] weights = [0.5f, 0.3f, 0.4f];
        var (baseline, models) = RandomModels(seed: n % 997, n, k: 3, deltaScale: 0.006f);

        float[] actual = Run(method, baseline, models.Select(m => (float[])m.Clone()).ToArray(), [n],
            (m, p) => p.Set("weight", (double)weights[m]).Set("density", (double)densities[m]));

        var stacked = new float[3 * n];
        for (int m = 0; m < 3; m++) models[m].CopyTo(stacked, m * n);
        Cpu.SubtractRows(stacked, baseline);
        for (int m = 0; m < 3; m++)
        {
            Span<float> row = stacked.AsSpan(m * n, n);
            double before = BlockwiseL1(row);
            Cpu.DropAndRescale(row, densities[m], false, Key(m));
            double after = BlockwiseL1(row);
            if ((float)before >= 1e-7f && (float)after >= 1e-7f)
                Cpu.Scale(row, (float)before / (float)after);
        }
        var expected = new float[n];
        if (methodName == "dare_ties")
            Cpu.SignConsensusMergeOntoBase(stacked, weights, SignElection.Sum, false, 1f, baseline, expected);
        else
        {
            Cpu.WeightedSum(stacked, weights, expected);
            Cpu.Axpby(1f, baseline, 1f, expected, expected);
        }
        AssertBits(expected, actual, $"{methodName}, n {n}");
        Assert.NotEqual(expected, baseline); // something was merged
    }

    /// <summary>
    /// The L1 factors ride into the combine as pre-scales: with normalize and λ, with a model at density 1 (no factor:
    /// read as stored), and with TIES' disjoint mean by count (the rows scaled by the factor, then by the weight, the
    /// election with unit weights), the bits are those of the passes one by one.
    /// </summary>
    [Theory]
    [InlineData("dare_ties", false, 1.0, "count")]
    [InlineData("dare_ties", true, 0.7, "count")]
    [InlineData("dare_ties", true, 0.7, "weighted")]
    [InlineData("dare_linear", true, 0.7, null)]
    [InlineData("dare_linear", false, 1.3, null)]
    public void L1_rescale_folded_into_the_combine_equals_the_passes(string methodName, bool normalize, double lambda, string? disjointMean)
    {
        const int n = 300_007; // several 64K chunks and a tail
        IMergeMethod method = MergeMethods.Find(methodName)!;
        float[] densities = [0.3f, 1f, 0.9f];
        float[] weights = [0.5f, 0.3f, 0.4f];
        var (baseline, models) = RandomModels(seed: 31, n, k: 3, deltaScale: 0.006f);

        float[] actual = Run(method, baseline, models.Select(m => (float[])m.Clone()).ToArray(), [n],
            (m, p) => p.Set("weight", (double)weights[m]).Set("density", (double)densities[m]),
            g =>
            {
                g.Set("normalize", normalize).Set("lambda", lambda);
                if (disjointMean is not null) g.Set("disjoint_mean", disjointMean);
            });

        var stacked = new float[3 * n];
        for (int m = 0; m < 3; m++) models[m].CopyTo(stacked, m * n);
        Cpu.SubtractRows(stacked, baseline);
        for (int m = 0; m < 3; m++)
        {
            if (densities[m] >= 1f) continue; // mergekit leaves the task vector untouched
            Span<float> row = stacked.AsSpan(m * n, n);
            double before = BlockwiseL1(row);
            Cpu.DropAndRescale(row, densities[m], false, Key(m));
            double after = BlockwiseL1(row);
            if ((float)before >= 1e-7f && (float)after >= 1e-7f)
                Cpu.Scale(row, (float)before / (float)after);
        }
        float[] combineWeights = (float[])weights.Clone();
        if (disjointMean == "count")
        {
            for (int m = 0; m < 3; m++)
                Cpu.Scale(stacked.AsSpan(m * n, n), weights[m]);
            Array.Fill(combineWeights, 1f);
        }
        var expected = new float[n];
        if (methodName == "dare_ties")
            Cpu.SignConsensusMerge(stacked, combineWeights, SignElection.Sum, normalize, expected);
        else
        {
            Cpu.WeightedSum(stacked, combineWeights, expected);
            float divisor = combineWeights[0] + combineWeights[1] + combineWeights[2];
            if (normalize) Cpu.Divide(expected, divisor);
        }
        Cpu.Scale(expected, (float)lambda);
        Cpu.Axpby(1f, baseline, 1f, expected, expected);
        AssertBits(expected, actual, $"{methodName}, normalize {normalize}, λ {lambda}, disjoint_mean {disjointMean}");
        Assert.NotEqual(expected, baseline);
    }

    /// <summary>
    /// The L1 norms a merge takes from the partials of the drop done in the decode (one pair per 64K chunk, filled span
    /// by span as the loader fills them) have the bits of the method's own fused drop, block by 2^20 block: values spread
    /// over 2^±60, so that float64 sums round and any other order of the additions shows.
    /// </summary>
    [Theory]
    [InlineData(2_386_547, 0L)]
    [InlineData(2_386_547, 3L << 20)] // a streamed chunk's rows start at a multiple of 2^20
    [InlineData(70_001, 0L)]
    [InlineData(1001, 0L)]
    public void Norms_from_the_decode_partials_equal_the_methods_own(int n, long offset)
    {
        int seed = Random.Shared.Next();
        var random = new Random(seed);
        var row = new float[n];
        for (int i = 0; i < n; i++) row[i] = (float)((random.NextDouble() * 2 - 1) * Math.Pow(2, random.Next(-60, 61)));
        var key = new PhiloxKey((ulong)seed, 99, 1);

        float[] expected = (float[])row.Clone();
        var (before, after) = TaskVectorMerge.DropWithL1Norms(Cpu, expected, 0.3f, key, offset);

        float[] actual = (float[])row.Clone();
        var partials = new double[DecodeDrop.NormPartials(n)];
        for (int start = 0; start < n; start += 1 << 18)
        {
            int count = Math.Min(1 << 18, n - start);
            DecodeDrop.Apply(actual.AsSpan(start, count), offset + start, new RandomDrop(0.3f, false, key, WithNorms: true),
                partials.AsSpan(start / DecodeDrop.NormChunkLength * 2));
        }
        var (decodedBefore, decodedAfter) = TaskVectorMerge.DecodedL1Norms(partials);
        AssertBits(expected, actual, $"seed {seed}, n {n}");
        Assert.True(BitConverter.DoubleToInt64Bits(before) == BitConverter.DoubleToInt64Bits(decodedBefore),
            $"seed {seed}, n {n}: ‖δ‖₁ {decodedBefore:R}, expected {before:R}");
        Assert.True(BitConverter.DoubleToInt64Bits(after) == BitConverter.DoubleToInt64Bits(decodedAfter),
            $"seed {seed}, n {n}: ‖drop(δ)‖₁ {decodedAfter:R}, expected {after:R}");
    }

    private static double BlockwiseL1(ReadOnlySpan<float> values)
    {
        double sum = 0;
        for (int start = 0; start < values.Length; start += TensorMergeInputs.ChunkAlignment)
            sum += Cpu.SumOfAbs(values.Slice(start, Math.Min(TensorMergeInputs.ChunkAlignment, values.Length - start)));
        return sum;
    }
}
