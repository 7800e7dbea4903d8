using Weld.Kernels.Cpu;
using Weld.Kernels.Cuda;
using Xunit;
using Xunit.Sdk;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>
/// Every CUDA kernel against the CPU backend on fresh random inputs: odd sizes (scalar tails, unaligned rows),
/// multiples of 4 (the float4 paths), NaN/±∞, and bf16-style ties. Bit for bit (any NaN matching any NaN) for the
/// deterministic kernels, a relative tolerance for the float64 reductions. Skipped without a device.
/// </summary>
public sealed class CudaKernelsTests
{
    private static readonly int[] s_sizes = [1, 7, 1024, 4099, 65537, 200003, 262144];
    private readonly CpuKernels _cpu = new();

    private static CudaKernels Gpu => CudaBackend.Instance;

    [CudaFact]
    public void WeightedSum_matches_cpu()
    {
        ForEachInput(3, (context, stacked, n) =>
        {
            float[] weights = [0.3f, -1.25f, 0.7f];
            var expected = new float[n];
            var actual = new float[n];
            _cpu.WeightedSum(stacked, weights, expected);
            Gpu.WeightedSum(stacked, weights, actual);
            BitAssert.Equal(expected, actual, context);
        });
    }

    [CudaFact]
    public void SubtractRows_matches_cpu()
    {
        ForEachInput(4, (context, stacked, n) =>
        {
            float[] baseline = stacked[..n];
            float[] expected = stacked[n..];
            float[] actual = (float[])expected.Clone();
            _cpu.SubtractRows(expected, baseline);
            Gpu.SubtractRows(actual, baseline);
            BitAssert.Equal(expected, actual, context);
        });
    }

    [CudaFact]
    public void Axpby_Scale_Divide_match_cpu()
    {
        ForEachInput(2, (context, stacked, n) =>
        {
            ReadOnlySpan<float> x = stacked.AsSpan(0, n), y = stacked.AsSpan(n, n);
            var expected = new float[n];
            var actual = new float[n];
            _cpu.Axpby(0.37f, x, -2.5f, y, expected);
            Gpu.Axpby(0.37f, x, -2.5f, y, actual);
            BitAssert.Equal(expected, actual, context + " axpby");

            _cpu.Scale(expected, 1.7f);
            Gpu.Scale(actual, 1.7f);
            BitAssert.Equal(expected, actual, context + " scale");

            _cpu.Divide(expected, 3.1f);
            Gpu.Divide(actual, 3.1f);
            BitAssert.Equal(expected, actual, context + " divide");
        });
    }

    [CudaTheory]
    [InlineData(0.1f, true)]
    [InlineData(0.5f, false)]
    [InlineData(0.9f, true)]
    public void DropAndRescale_matches_cpu(float density, bool rescale)
    {
        ForEachInput(1, (context, values, n) =>
        {
            var key = new PhiloxKey((ulong)System.Random.Shared.NextInt64(), (uint)System.Random.Shared.Next(), 3);
            float[] expected = (float[])values.Clone();
            float[] actual = (float[])values.Clone();
            _cpu.DropAndRescale(expected, density, rescale, key);
            Gpu.DropAndRescale(actual, density, rescale, key);
            BitAssert.Equal(expected, actual, $"{context} {key}");
        });
    }

    [CudaTheory]
    [InlineData(3, SignElection.Sum, true)]
    [InlineData(3, SignElection.Sum, false)]
    [InlineData(4, SignElection.Count, true)]
    [InlineData(20, SignElection.Sum, true)] // more models than the register-cached path holds
    [InlineData(20, SignElection.Count, false)]
    public void SignConsensusMerge_matches_cpu(int models, SignElection election, bool normalize)
    {
        ForEachInput(models, (context, stacked, n) =>
        {
            var weights = new float[models];
            for (int k = 0; k < models; k++)
                weights[k] = k % 5 == 4 ? 0f : (float)(System.Random.Shared.NextDouble() * 2 - 0.5);
            var expected = new float[n];
            var actual = new float[n];
            _cpu.SignConsensusMerge(stacked, weights, election, normalize, expected);
            Gpu.SignConsensusMerge(stacked, weights, election, normalize, actual);
            BitAssert.Equal(expected, actual, context);
        });
    }

    [CudaFact]
    public void KeepTopK_matches_cpu_including_ties()
    {
        ForEachInput(1, (context, values, n) =>
        {
            foreach (long k in new long[] { 0, 1, n / 3, n / 2 + 1, n - 1, n, n + 5 })
            {
                float[] expected = (float[])values.Clone();
                float[] actual = (float[])values.Clone();
                TopKSelection cpu = _cpu.KeepTopK(expected, k);
                TopKSelection gpu = Gpu.KeepTopK(actual, k);
                BitAssert.Identical(expected, actual, $"{context} k={k}");
                Assert.Equal(cpu, gpu);
            }
        });
    }

    [CudaFact]
    public void DropAndRescale_from_a_tensor_offset_matches_cpu()
    {
        // firstIndex at every residue mod 4: the Philox blocks straddle the span's start.
        ForEachInput(1, (context, values, n) =>
        {
            var key = new PhiloxKey((ulong)System.Random.Shared.NextInt64(), (uint)System.Random.Shared.Next(), 1);
            foreach (long first in new long[] { 1, 2, 3, 4, 65536 * 3 + 1, (1L << 32) + 2 })
            {
                float[] expected = (float[])values.Clone();
                float[] actual = (float[])values.Clone();
                _cpu.DropAndRescale(expected, 0.4f, true, key, first);
                Gpu.DropAndRescale(actual, 0.4f, true, key, first);
                BitAssert.Equal(expected, actual, $"{context} {key} first={first}");
            }
        });
    }

    [CudaTheory]
    [InlineData(0, 20, 11)]
    [InlineData(0, 15, 16)] // wider than the shared-memory bins: global atomics
    [InlineData(5, 10, 10)]
    public void MagnitudeHistogram_matches_cpu(int prefixOfKey, int shift, int width)
    {
        ForEachInput(1, (context, values, n) =>
        {
            // A prefix that occurs: taken from an element's key, so the digits below it are populated.
            int prefix = prefixOfKey == 0 || shift + width >= 31 ? 0 : (BitConverter.SingleToInt32Bits(values[n / 2]) & 0x7FFFFFFF) >> (shift + width);
            var expected = new long[1 << width];
            var actual = new long[1 << width];
            expected[0] = actual[0] = 7; // the call adds to what is there
            _cpu.MagnitudeHistogram(values, prefix, shift, width, expected);
            Gpu.MagnitudeHistogram(values, prefix, shift, width, actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"{context} prefix={prefix} shift={shift} width={width}");
        });
    }

    [CudaFact]
    public void KeepAboveMagnitude_matches_cpu_including_ties()
    {
        ForEachInput(1, (context, values, n) =>
        {
            int key = BitConverter.SingleToInt32Bits(values[n / 3]) & 0x7FFFFFFF;
            foreach (long ties in new long[] { 0, 1, 5, n / 7, long.MaxValue })
            {
                float[] expected = (float[])values.Clone();
                float[] actual = (float[])values.Clone();
                long keptCpu = _cpu.KeepAboveMagnitude(expected, key, ties);
                long keptGpu = Gpu.KeepAboveMagnitude(actual, key, ties);
                Assert.Equal(keptCpu, keptGpu);
                BitAssert.Identical(expected, actual, $"{context} key=0x{key:X8} ties={ties}");
            }
        });
    }

    [CudaFact]
    public void KeepMagnitudeBand_matches_cpu_including_ties()
    {
        ForEachInput(1, (context, values, n) =>
        {
            foreach ((long bottom, long top) in new (long, long)[] { (0, 1), (1, 0), (n / 4, n / 10), (n / 2, n / 2 - 1), (n - 1, 0), (0, n - 1), (n / 3, 0) })
            {
                float[] expected = (float[])values.Clone();
                float[] actual = (float[])values.Clone();
                _cpu.KeepMagnitudeBand(expected, bottom, top);
                Gpu.KeepMagnitudeBand(actual, bottom, top);
                BitAssert.Identical(expected, actual, $"{context} bottom={bottom} top={top}");
            }
        });
    }

    [CudaFact]
    public void Reductions_match_cpu_bit_for_bit()
    {
        // reduce.cu adds in CpuKernels' order (64K chunks, eight lanes, the same lane combination), so the float64
        // results are identical, not merely close; NaN results (from NaN/∞ inputs) need only both be NaN.
        ForEachInput(2, (context, stacked, n) =>
        {
            ReadOnlySpan<float> a = stacked.AsSpan(0, n), b = stacked.AsSpan(n, n);
            AssertSameDouble(_cpu.Dot(a, b), Gpu.Dot(a, b), context + " dot");
            AssertSameDouble(_cpu.SumOfSquares(a), Gpu.SumOfSquares(a), context + " sum of squares");
            AssertSameDouble(_cpu.SumOfAbs(a), Gpu.SumOfAbs(a), context + " sum of abs");
        });
    }

    [CudaFact]
    public void Reductions_of_unaligned_spans_match_cpu()
    {
        // Offsets 1..3 leave the spans off 16-byte alignment and the chunk tails at every length mod 8.
        float[] values = TestData.Plain(new System.Random(TestData.NewSeed()), 200_011);
        for (int offset = 1; offset < 4; offset++)
        {
            ReadOnlySpan<float> a = values.AsSpan(offset), b = values.AsSpan(0, a.Length);
            AssertSameDouble(_cpu.Dot(a, b), Gpu.Dot(a, b), $"dot offset {offset}");
            AssertSameDouble(_cpu.SumOfSquares(a), Gpu.SumOfSquares(a), $"sum of squares offset {offset}");
            AssertSameDouble(_cpu.SumOfAbs(a), Gpu.SumOfAbs(a), $"sum of abs offset {offset}");
        }
    }

    [CudaFact]
    public void Widening_conversions_match_FloatConversions_for_every_16_bit_pattern()
    {
        // All 65536 patterns (NaNs, subnormals, ±Inf) plus an odd tail, at an unaligned offset too.
        var source = new ushort[65536 + 3];
        for (int i = 0; i < source.Length; i++)
            source[i] = (ushort)i;
        foreach (int offset in new[] { 0, 1 })
        {
            ReadOnlySpan<ushort> input = source.AsSpan(offset);
            var expected = new float[input.Length];
            var actual = new float[input.Length];
            FloatConversions.Bf16ToSingle(input, expected);
            Gpu.Bf16ToSingle(input, actual);
            BitAssert.Identical(expected, actual, $"bf16 offset {offset}");
            FloatConversions.HalfToSingle(input, expected);
            Gpu.HalfToSingle(input, actual);
            BitAssert.Identical(expected, actual, $"fp16 offset {offset}");
        }
    }

    [CudaFact]
    public void Narrowing_conversions_match_FloatConversions_bit_for_bit()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var values = new float[300_001];
        for (int i = 0; i < values.Length; i++)
        {
            // Random bit patterns cover NaN payloads and every exponent; every 3rd value sits on a rounding tie.
            int bits = random.Next() ^ (random.Next(2) << 31);
            if (i % 3 == 0)
                bits = (bits & unchecked((int)0xFFFF8000)) | 0x1000 | (random.Next(2) << 15);
            values[i] = BitConverter.Int32BitsToSingle(bits);
        }
        var expected = new ushort[values.Length];
        var actual = new ushort[values.Length];
        FloatConversions.SingleToBf16(values, expected);
        Gpu.SingleToBf16(values, actual);
        AssertSameBits(expected, actual, values, $"bf16 seed {seed}");
        FloatConversions.SingleToHalf(values, expected);
        Gpu.SingleToHalf(values, actual);
        AssertSameBits(expected, actual, values, $"fp16 seed {seed}");
    }

    [CudaFact]
    public void The_backend_names_its_device()
    {
        Assert.Equal("cuda:0", Gpu.Name);
        Assert.True(Gpu.ComputeCapability >= 50, Gpu.DeviceName);
        Assert.True(Gpu.Architecture <= Gpu.ComputeCapability);
    }

    /// <summary>Runs <paramref name="check"/> for each size and input kind on <paramref name="rows"/> stacked rows.</summary>
    private static void ForEachInput(int rows, Action<string, float[], int> check, bool specials = true)
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach (int n in s_sizes)
        {
            foreach ((string kind, _) in TestData.Kinds(random, 0))
            {
                if (!specials && kind.Contains("specials", StringComparison.Ordinal))
                    continue;
                var stacked = new float[rows * n];
                for (int k = 0; k < rows; k++)
                {
                    float[] row = kind switch
                    {
                        "plain" => TestData.Plain(random, n),
                        "ties" => TestData.TieHeavy(random, n),
                        "plain+specials" => TestData.WithSpecials(random, TestData.Plain(random, n)),
                        _ => TestData.WithSpecials(random, TestData.TieHeavy(random, n)),
                    };
                    row.CopyTo(stacked, k * n);
                }
                check($"seed {seed} n={n} {kind}", stacked, n);
            }
        }
    }

    private static void AssertSameDouble(double expected, double actual, string context)
    {
        if (double.IsNaN(expected) && double.IsNaN(actual))
            return;
        if (BitConverter.DoubleToInt64Bits(expected) != BitConverter.DoubleToInt64Bits(actual))
            throw new XunitException($"{context}: GPU {actual:R}, CPU {expected:R}");
    }

    private static void AssertSameBits(ushort[] expected, ushort[] actual, float[] input, string context)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i] != actual[i])
                throw new XunitException($"{context}: element {i} (input 0x{BitAssert.Bits(input[i]):X8}) is 0x{actual[i]:X4}, expected 0x{expected[i]:X4}");
        }
    }
}
