using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Runtime.InteropServices;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// `della-speed [--float32] [FIBER_LENGTH...]`: DELLA's magnitude-rank sampling (<see cref="CpuKernels.SampleByMagnitudeRank"/>, no
/// rescale division: the bucket path the L1-rescale default takes) on one thread over 4,096 fibers of bf16 task-vector
/// data as <see cref="SyntheticModels"/> writes it (bf16(θ + noise) − bf16(θ), θ ~ U(±0.035), noise ~ U(±1.7e-3)),
/// low 0.2, ε 0.1 (della.yml); with <c>--float32</c>, float32 normal data (σ 1e-3: spread keys, as a float32
/// fine-tune's task vector) instead. CPU time of the process, best of 9 calls: load on the machine does not count. Prints
/// ns/element and a hash of the output (equal between builds that give the same bits).
/// </summary>
internal static class DellaSpeed
{
    private const int Fibers = 4096;

    public static int Run(string[] arguments)
    {
        bool spread = arguments.Contains("--float32");
        string[] lengths = [.. arguments.Where(a => a != "--float32")];
        int[] fiberLengths = lengths.Length == 0 ? [2048, 8192] : Array.ConvertAll(lengths, s => int.Parse(s, CultureInfo.InvariantCulture));
        var kernels = new CpuKernels(1);
        var key = new PhiloxKey(42, 0x1234, 1);
        foreach (int length in fiberLengths)
        {
            int count = Fibers * length;
            var pristine = new float[count];
            var random = new System.Random(7);
            for (int i = 0; i < count; i++)
            {
                float theta = Bf16(0.035f * (float)(2 * random.NextDouble() - 1));
                float tuned = Bf16(theta + 1.7e-3f * (float)(2 * random.NextDouble() - 1));
                pristine[i] = spread
                    ? (float)(Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble()) * 1e-3)
                    : tuned - theta;
            }
            var work = new float[count];
            double best = double.MaxValue;
            for (int run = 0; run < 9; run++)
            {
                pristine.CopyTo(work, 0);
                TimeSpan start = Process.GetCurrentProcess().TotalProcessorTime;
                kernels.SampleByMagnitudeRank(work, length, 1, 0.2f, 0.1f, 0.3f, false, key);
                best = Math.Min(best, (Process.GetCurrentProcess().TotalProcessorTime - start).TotalSeconds);
            }
            string hash = Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(work.AsSpan())))[..16];
            // The same with both L1 norms (the rescale_norm: l1 default), as TaskVectorMerge calls it per 2^20 block.
            double bestWithNorms = double.MaxValue, norms = 0;
            for (int run = 0; run < 9; run++)
            {
                pristine.CopyTo(work, 0);
                TimeSpan start = Process.GetCurrentProcess().TotalProcessorTime;
                norms = 0;
                for (int block = 0; block < count; block += 1 << 20)
                {
                    var (before, after) = kernels.SampleByMagnitudeRankWithNorms(work.AsSpan(block, Math.Min(1 << 20, count - block)), length, 1,
                        0.2f, 0.1f, 0.3f, false, key, block);
                    norms += before - after;
                }
                bestWithNorms = Math.Min(bestWithNorms, (Process.GetCurrentProcess().TotalProcessorTime - start).TotalSeconds);
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{(spread ? "float32 " : "")}fibers of {length,5}: {best * 1e9 / count:F3} ns/element (one thread, CPU time, best of 9), output {hash}; with L1 norms {bestWithNorms * 1e9 / count:F3} (Σ before − after {norms:R})"));
        }
        return 0;
    }

    /// <summary>Rounds to bf16 (nearest even), as a fine-tune saved in bf16 holds it.</summary>
    private static float Bf16(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000u);
    }
}
