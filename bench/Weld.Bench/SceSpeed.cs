using System.Diagnostics;
using System.Globalization;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `sce-speed`: SCE's own kernels on one thread over two task vectors like the bench's (bf16-valued δ, 30 % of the
/// positions selected): the variance across rows, Σ δ² of each row through the selector, the erase-and-mix onto the
/// base. Out of cache (16M elements per row: every byte from memory) and in cache (64K elements, looped): the gap says
/// how memory-bound each kernel is. Then the selection as a mask (top-k written over the variances, read as a selector)
/// against the selection as a cut (tested by the energy sweep, which leaves bits for the mix). CPU time of the
/// process, best of 5: load on the machine does not count.
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

            // The selection as a mask (KeepTopK writes the variances, the sweeps read them as a selector) against the
            // selection as a cut (SelectTopKCut writes nothing; the energy sweep tests the keys and writes bits, the mix reads
            // the bits). Both from the same variances, copied in first (the copy is in both figures).
            var variances = new float[length];
            long nonzero = kernels.VarianceAcrossRows(stacked, variances);
            long keep = (long)(0.3 * nonzero);
            var keys = new float[length];
            var bits = new ulong[Weld.Kernels.SelectionBits.WordCount(length)];
            double copy = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) variances.CopyTo(keys, 0); });
            double mask = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) { variances.CopyTo(keys, 0); kernels.KeepTopK(keys, keep); } });
            Weld.Kernels.MagnitudeKeep cutOf = default;
            double cut = CpuTime.Best(() => { for (int r = 0; r < repeats; r++) { variances.CopyTo(keys, 0); cutOf = kernels.SelectTopKCut(keys, keep); } });
            double keptEnergies = CpuTime.Best(() =>
            {
                for (int r = 0; r < repeats; r++) kernels.AddSumsOfSquaresWhereKept(stacked, length, keys, cutOf, sums, bits);
            });
            double bitsMix = CpuTime.Best(() =>
            {
                for (int r = 0; r < repeats; r++) kernels.SignErasedMixOntoBaseWhereKept(stacked, bits, weights, 1e-6f, baseline, output);
            });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{where,-13} copy {copy * perElement:F3} · copy + top-k mask {mask * perElement:F3}, copy + top-k cut {cut * perElement:F3} · Σδ² both rows through the cut + bits {keptEnergies * perElement:F3} · mix onto base through bits {bitsMix * perElement:F3}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{where,-13} after the variance: mask + Σδ² + mix {(mask - copy + energies + mix) * perElement:F3} → cut + Σδ² + mix {(cut - copy + keptEnergies + bitsMix) * perElement:F3}"));
        }
        return 0;
    }
}
