using System.Diagnostics;
using System.Globalization;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `combine-speed`: the task-vector combine onto the base on one thread, K = 2 rows of 16M float32 (out of cache), with
/// the L1 rescale factors as separate Scale passes (before) and as the kernels' pre-scales (after): TIES
/// (SignConsensusMergeOntoBase) and the linear family (WeightedSum, Divide, Scale, Axpby vs WeightedSumOntoBase). CPU
/// time of the process, best of 5: load on the machine does not count.
/// </summary>
internal static class CombineSpeed
{
    private const int Length = 1 << 24;

    public static int Run()
    {
        var random = new System.Random(1);
        var pristine = new float[2 * Length];
        for (int i = 0; i < pristine.Length; i++) pristine[i] = (float)(random.NextDouble() - 0.5) * 0.01f;
        var baseline = new float[Length];
        for (int i = 0; i < Length; i++) baseline[i] = (float)(random.NextDouble() - 0.5);
        var rows = new float[2 * Length];
        var output = new float[Length];
        float[] weights = [0.5f, 0.5f], factors = [1.4285715f, 1.4306f];
        var kernels = new CpuKernels(1);
        void Reset() => pristine.CopyTo(rows, 0);
        void ScaleRows()
        {
            for (int k = 0; k < 2; k++) kernels.Scale(rows.AsSpan(k * Length, Length), factors[k]);
        }

        Console.WriteLine($"K = 2 rows of {Length:N0} elements, one thread, CPU time, best of 5 (ns per output element)");
        double tiesPasses = CpuTime.Best(Reset, () =>
        {
            ScaleRows();
            kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, false, 1f, baseline, output);
        });
        double tiesFused = CpuTime.Best(Reset, () =>
            kernels.SignConsensusMergeOntoBase(rows, weights, SignElection.Sum, false, 1f, baseline, output, factors));
        Print("TIES onto base", "Scale ×2 + merge", tiesPasses, "pre-scaled merge", tiesFused);

        foreach ((bool normalize, float lambda) in new[] { (false, 1f), (true, 0.7f) })
        {
            double linearPasses = CpuTime.Best(Reset, () =>
            {
                ScaleRows();
                kernels.WeightedSum(rows, weights, output);
                if (normalize) kernels.Divide(output, 1.2f);
                if (lambda != 1f) kernels.Scale(output, lambda);
                kernels.Axpby(1f, baseline, 1f, output, output);
            });
            double linearFused = CpuTime.Best(Reset, () =>
                kernels.WeightedSumOntoBase(rows, weights, normalize ? 1.2f : 1f, lambda, baseline, output, factors));
            Print($"linear (normalize {normalize}, λ {lambda})", "Scale ×2 + sum + divide + scale + Axpby", linearPasses,
                "WeightedSumOntoBase", linearFused);
        }
        return 0;
    }

    private static void Print(string what, string beforeName, double before, string afterName, double after) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{what}: {beforeName} {before * 1e9 / Length:F3} · {afterName} {after * 1e9 / Length:F3} ({before / after:F2}x)"));
}
