using System.Diagnostics;
using System.Globalization;
using Weld.Engine.Methods;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `topk-speed`: the magnitude selections of TIES, Model Breadcrumbs and SCE on one thread, whole-tensor and streamed,
/// over the end-to-end bench's task vectors (bf16(base + δ) − bf16(base), as `make-models` draws them: heavy ties) and
/// over float32 normals (no ties), at the 1B model's tensor sizes (MLP 16.8M, attention 4.2M, k/v 1M elements: all
/// out of cache but the last). CPU time of the process, best of 5, ns per element.
/// </summary>
internal static class TopKSpeed
{
    private static readonly int[] s_lengths = [1 << 24, 1 << 22, 1 << 20];

    public static int Run()
    {
        var kernels = new CpuKernels(1);
        Console.WriteLine("one thread, CPU time, best of 5, ns/element; density 0.3 (top-k), density 0.3 + gamma 0.01 (band)");
        foreach (bool bf16 in new[] { true, false })
        {
            foreach (int length in s_lengths)
            {
                float[] pristine = bf16 ? Bf16TaskVector(length) : Normal(length);
                var work = new float[length];
                long keep = MagnitudeCounts.KeepCount(0.3, length);
                var (dropBottom, dropTop) = MagnitudeCounts.BreadcrumbsCuts(0.3, 0.01, length);
                double topK = CpuTime.Best(() => pristine.CopyTo(work, 0), () => kernels.KeepTopK(work, keep));
                double band = CpuTime.Best(() => pristine.CopyTo(work, 0), () => kernels.KeepMagnitudeBand(work, dropBottom, dropTop));
                Weld.Kernels.TopKSelection cut = kernels.KeepTopK(pristine.AsSpan().ToArray(), keep);
                int key = BitConverter.SingleToInt32Bits(cut.Threshold);
                double above = CpuTime.Best(() => pristine.CopyTo(work, 0), () => Streamed(kernels, work, key, cut.KeptAtThreshold));
                double copy = CpuTime.Best(() => pristine.CopyTo(work, 0));
                Steps(pristine, keep);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{(bf16 ? "bf16 task vector" : "float32 normal"),-16} {length,10:N0}: KeepTopK {Ns(topK, length)} · KeepMagnitudeBand {Ns(band, length)} · "
                    + $"streamed KeepAboveMagnitude (1M chunks) {Ns(above, length)} · copy {Ns(copy, length)}"));
            }
        }
        return 0;
    }

    private static unsafe void Steps(float[] values, long keep)
    {
        int length = values.Length;
        long rank = length - keep;
        var options = new ParallelOptions { MaxDegreeOfParallelism = 1 };
        int[] equal = new int[ChunkedParallel.ChunkCount(length)];
        fixed (float* pinned = values)
        {
            float* data = pinned;
            int low = 0, high = 0; double share = 0;
            double bracket = CpuTime.Best(() => SampledMagnitudeSelect.TryBracket((int*)data, length, rank, out low, out high, out share));
            var band = new int[length];
            double partition = CpuTime.Best(() =>
            {
                fixed (int* b = band)
                    for (int c = 0; c < ChunkedParallel.ChunkCount(length); c++)
                        SampledMagnitudeSelect.Partition((int*)data + ChunkedParallel.ChunkStart(c), ChunkedParallel.ChunkSize(c, length), low, high, b, length, out _);
            });
            bool hit = false; MagnitudeRank r = default;
            double select = CpuTime.Best(() => hit = SampledMagnitudeSelect.TrySelect(data, length, rank, options, equal, out r));
            double radix = CpuTime.Best(() => MagnitudeSelect.SelectByRadix(data, length, rank, options, equal));
            var work = new float[length];
            long above = length - r.CountBelow - r.CountEqual;
            var cut = new MagnitudeCut(r.Key, keep - above, r.CountEqual, equal);
            double mask = CpuTime.Best(() => values.CopyTo(work, 0), () =>
            {
                fixed (float* w = work) MagnitudeMask.Apply(w, length, cut, null, options);
            });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   mask {Ns(mask, length)} · bracket [{low}, {high}] ({high - low + 1} keys) share {share:F4} hit {hit} key {r.Key} equal {r.CountEqual}: TryBracket {Ns(bracket, length)} · Partition {Ns(partition, length)} · TrySelect {Ns(select, length)} · radix {Ns(radix, length)}"));
        }
    }

    private static void Streamed(CpuKernels kernels, float[] work, int key, long ties)
    {
        for (int start = 0; start < work.Length; start += 1 << 20)
            ties -= kernels.KeepAboveMagnitude(work.AsSpan(start, Math.Min(1 << 20, work.Length - start)), key, ties);
    }

    private static string Ns(double seconds, int length) => (seconds * 1e9 / length).ToString("F3", CultureInfo.InvariantCulture);

    /// <summary>bf16(b + δ) − bf16(b), b ~ 0.035·U(−1, 1), δ ~ 1.7e-3·U(−1, 1): the bench models' task vectors.</summary>
    internal static float[] Bf16TaskVector(int length)
    {
        var random = new System.Random(7);
        var tuned = new float[length];
        var baseline = new float[length];
        for (int i = 0; i < length; i++)
        {
            baseline[i] = 0.035f * (2 * random.NextSingle() - 1);
            tuned[i] = baseline[i] + 1.7e-3f * (2 * random.NextSingle() - 1);
        }
        var bits = new ushort[length];
        FloatConversions.SingleToBf16(tuned, bits);
        FloatConversions.Bf16ToSingle(bits, tuned);
        FloatConversions.SingleToBf16(baseline, bits);
        FloatConversions.Bf16ToSingle(bits, baseline);
        for (int i = 0; i < length; i++) tuned[i] -= baseline[i];
        return tuned;
    }

    private static float[] Normal(int length)
    {
        var random = new System.Random(7);
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()));
        return values;
    }
}
