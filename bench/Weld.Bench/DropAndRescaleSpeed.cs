using System.Diagnostics;
using System.Globalization;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `dare-speed`: DARE's kernels alone on one thread, per vector width this CPU runs: the Philox words only
/// (<see cref="PhiloxStreamWords"/>), the drop in place (density 0.3, no division: the L1-rescale default), and the drop
/// fused with both L1 norms (<see cref="CpuKernels.DropAndRescaleWithNorms"/>, widest path). 16M float32 elements
/// (64 MiB, out of cache), CPU time of the process, best of 5: load on the machine does not count.
/// </summary>
internal static class DropAndRescaleSpeed
{
    private const int Length = 1 << 24;

    /// <summary>
    /// The loader's side: δ = bf16(θ) − θ_base decoded, then dropped with both norms as a second pass (main), against the
    /// drop done inside the decode (<see cref="DecodeDropKernel"/>), with and without the norms; the decode alone for scale.
    /// </summary>
    private static unsafe void DecodeRows(PhiloxKey key, float[] pristine, float[] work, CpuKernels kernels)
    {
        var bf16 = new ushort[Length];
        FloatConversions.SingleToBf16(pristine, bf16);
        var baseRow = new float[Length];
        for (int i = 0; i < Length; i++) baseRow[i] = pristine[(i * 7919) & (Length - 1)] * 0.5f;
        var norms = new double[2 * (Length / DecodeDropKernel.NormChunk + 1)];
        double decode = CpuTime.Best(() => FloatConversions.Bf16ToSingleMinus(bf16, baseRow, work));
        double twoPasses = CpuTime.Best(() =>
        {
            FloatConversions.Bf16ToSingleMinus(bf16, baseRow, work);
            kernels.DropAndRescaleWithNorms(work, 0.3f, false, key);
        });
        double fusedNorms = 0, fusedPlain = 0;
        fixed (ushort* source = bf16)
        fixed (float* subtrahend = baseRow, destination = work)
        fixed (double* partials = norms)
        {
            ushort* s = source;
            float* b = subtrahend, d = destination;
            double* n = partials;
            fusedNorms = CpuTime.Best(() => DecodeDropKernel.Bf16Minus(s, b, d, Length, 0, 0.3f, false, key, n, PhiloxVectorBlocks.Widest));
            fusedPlain = CpuTime.Best(() => DecodeDropKernel.Bf16Minus(s, b, d, Length, 0, 0.3f, false, key, null, PhiloxVectorBlocks.Widest));
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"bf16 task vector: decode alone {decode * 1e9 / Length:F3} ns/element · decode, then drop + norms {twoPasses * 1e9 / Length:F3} · " +
            $"drop + norms inside the decode {fusedNorms * 1e9 / Length:F3} · drop inside the decode, no norms {fusedPlain * 1e9 / Length:F3}"));
    }

    public static int Run()
    {
        var key = new PhiloxKey(42, 0x1234, 1);
        var pristine = new float[Length];
        var random = new System.Random(1);
        for (int i = 0; i < Length; i++) pristine[i] = (float)(random.NextDouble() - 0.5);
        var work = new float[Length];
        var words = new uint[Length];
        Console.WriteLine($"Widest path here: {PhiloxVectorBlocks.Widest}; {Length:N0} elements, one thread, CPU time, best of 5");
        foreach (PhiloxWidth width in Enum.GetValues<PhiloxWidth>())
        {
            if (!PhiloxVectorBlocks.IsSupported(width)) continue;
            double fill = CpuTime.Best(() => { }, () => PhiloxStreamWords.Fill(key, 0, words, width));
            double drop = CpuTime.Best(() => pristine.CopyTo(work, 0), () => DropAndRescaleKernel.Apply(work, 0, 0.3f, false, key, width));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{width,-7} Philox words {fill * 1e9 / Length:F3} ns/element · drop in place {drop * 1e9 / Length:F3} ns/element ({Length * 4 / drop / 1e9:F2} GB/s)"));
        }
        var kernels = new CpuKernels(1);
        double fused = CpuTime.Best(() => pristine.CopyTo(work, 0), () => kernels.DropAndRescaleWithNorms(work, 0.3f, false, key));
        double separate = CpuTime.Best(() => pristine.CopyTo(work, 0), () =>
        {
            kernels.SumOfAbs(work);
            kernels.DropAndRescale(work, 0.3f, false, key);
            kernels.SumOfAbs(work);
        });
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"drop + both L1 norms: fused {fused * 1e9 / Length:F3} ns/element, as three calls {separate * 1e9 / Length:F3} ns/element"));
        DecodeRows(key, pristine, work, kernels);
        return 0;
    }
}
