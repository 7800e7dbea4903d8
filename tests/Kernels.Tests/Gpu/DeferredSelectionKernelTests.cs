using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The GPU backend's magnitude selections (applied at once, the interface's default) and its selecting combines give the
/// CPU backend's bytes, whose selections are deferred to the combine; a CPU selection is refused by the GPU combine.
/// </summary>
public sealed class DeferredSelectionKernelTests
{
    private static readonly int[] s_sizes = [7, 4099, 65536 + 777];
    private static readonly float[] s_weights = [0.5f, -0.3f, 0.4f];
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Selections_then_combines_match_the_cpu(string shape)
    {
        GpuKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            float[] stacked = PreScaledCombineTests.Rows(random, s_weights.Length, n);
            float[] baseline = TestData.Plain(random, n);
            long[] counts = [n / 3, random.Next(n + 1), 0];
            (long, long)[] cuts = [(n / 4, n / 50 + 1), (random.Next(n / 2), 0), (0, 0)];
            string context = $"{shape} seed {seed} n {n}";

            float[] cpuRows = (float[])stacked.Clone(), gpuRows = (float[])stacked.Clone();
            var cpuSelections = new MagnitudeSelection?[3];
            var gpuSelections = new MagnitudeSelection?[3];
            for (int k = 0; k < 3; k++)
            {
                cpuSelections[k] = _cpu.SelectTopK(cpuRows.AsSpan(k * n, n), counts[k]);
                gpuSelections[k] = ((IMergeKernels)gpu).SelectTopK(gpuRows.AsSpan(k * n, n), counts[k]);
                Assert.False(gpuSelections[k]!.IsDeferred, context);
            }
            float[] cpu = new float[n], actual = new float[n];
            _cpu.SignConsensusMergeOntoBase(cpuRows, s_weights, SignElection.Sum, true, 0.7f, baseline, cpu, [], cpuSelections);
            ((IMergeKernels)gpu).SignConsensusMergeOntoBase(gpuRows, s_weights, SignElection.Sum, true, 0.7f, baseline, actual, [], gpuSelections);
            BitAssert.Equal(cpu, actual, context + " top-k");
            if (cpuSelections[0]!.IsDeferred)
                Assert.Throws<ArgumentException>(() => ((IMergeKernels)gpu).SignConsensusMergeOntoBase(
                    cpuRows, s_weights, SignElection.Sum, true, 0.7f, baseline, actual, [], cpuSelections));

            cpuRows = (float[])stacked.Clone();
            gpuRows = (float[])stacked.Clone();
            for (int k = 0; k < 3; k++)
            {
                cpuSelections[k] = _cpu.SelectMagnitudeBand(cpuRows.AsSpan(k * n, n), cuts[k].Item1, cuts[k].Item2);
                gpuSelections[k] = ((IMergeKernels)gpu).SelectMagnitudeBand(gpuRows.AsSpan(k * n, n), cuts[k].Item1, cuts[k].Item2);
            }
            _cpu.WeightedSumOntoBase(cpuRows, s_weights, 1f, 0.7f, baseline, cpu, [], cpuSelections);
            ((IMergeKernels)gpu).WeightedSumOntoBase(gpuRows, s_weights, 1f, 0.7f, baseline, actual, [], gpuSelections);
            BitAssert.Equal(cpu, actual, context + " band");
        }
    }
}
