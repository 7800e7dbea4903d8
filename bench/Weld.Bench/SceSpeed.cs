using System.Diagnostics;
using System.Globalization;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `sce-speed`: SCE's own kernels on one thread over two task vectors like the bench's (bf16-valued δ, 30 % of the
/// positions selected): the variance across rows, Σ δ² of each row through the selector, the erase-and-mix onto the
/// base. Out of cache (16M elements per row: every byte from memory) and in cache (64K elements, looped): the gap says
/// how memory-bound each kernel is. CPU time of the process, best of 5: load on the machine does not count.
/// </summary>
internal static class SceSpeed
{
    private const int Rows = 2;

    public static int Run()
    {
        Console.WriteLine("one thread, CPU time, best of 5; ns per element (per position: both rows together)");
        foreach ((string where, int length, int repeats) in new[] { ("memory (16M)", 1 << 24, 1), ("cache (64K)", 1 << 16, 256) })
        {
            var random = new System.Random(1);
            var stacked = new float[Rows * length];
            for (int i = 0; i < stacked.Length; i++)
                stacked[i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits((float)((random.NextDouble() - 0.5) * 1e-2)) & 0xFFFF0000u);
            var baseline = new float[length];
            for (int i = 0; i < length; i++) baseline[i] = (float)(random.NextDouble() - 0.5);
            var selector = new float[length];
            for (int i = 0; i < length; i++) selector[i] = random.NextDouble() < 0.3 ? 1f + i % 7 : 0f;
            var output = new float[length];
            var kernels = new CpuKernels(1);
            float[] weights = [0.4f, 0.6f];
            double perElement = 1e9 / ((double)length * repeats);
            double variance = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) kernels.VarianceAcrossRows(stacked, output); });
            double energy = CpuTime.Best(() =>
            {
                for (int r = 0; r < repeats; r++)
                    for (int k = 0; k < Rows; k++) kernels.SumOfSquaresWhereSelected(stacked.AsSpan(k * length, length), selector);
            });
            var sums = new double[Rows];
            double energies = CpuTime.Best(() =>
            {
                for (int r = 0; r < repeats; r++) kernels.AddSumsOfSquaresWhereSelected(stacked, length, selector, sums);
            });
            double mix = CpuTime.Best(() =>
            {
                for (int r = 0; r < repeats; r++) kernels.SignErasedMixOntoBase(stacked, selector, weights, 1e-6f, baseline, output);
            });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{where,-13} variance {variance * perElement:F3} · Σδ² row by row {energy * perElement:F3}, both rows in one sweep {energies * perElement:F3} · mix onto base {mix * perElement:F3}"));
        }
        return 0;
    }
}
