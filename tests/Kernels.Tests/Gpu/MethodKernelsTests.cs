using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The newer methods' GPU kernels (<c>Gpu/MethodKernels.cs</c>) against <see cref="MethodScalarReference"/> and the CPU
/// backend on every accelerator shape: empty, odd sizes, sizes that cross group, grid and byte boundaries, NaN/±∞ and
/// exact ties. Bit for bit (MagMax and the cleared rows copy values, so there NaN payloads too); counts exactly.
/// </summary>
public sealed class MethodKernelsTests
{
    // 0 (no launch), a tail below one group, one small group (16 threads) + 1, the small shape's grid stride (4 groups
    // of 16) and + 1, the warp-32 shape's grid stride (4 groups of 32) + 1, many strides of both.
    private static readonly int[] s_sizes = [0, 1, 7, 17, 64, 65, 129, 4099];
    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SelectLargestMagnitude_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 2, 3, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                var cpu = new float[n];
                var actual = new float[n];
                _cpu.SelectLargestMagnitude(stacked, cpu);
                gpu.SelectLargestMagnitude(stacked, actual);
                BitAssert.Identical(MethodScalarReference.LargestMagnitude(stacked, rows, n), actual, $"{shape} {context}");
                BitAssert.Identical(cpu, actual, $"{shape} {context} vs cpu");
            }, s_sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SelectLargestMagnitude_ties_go_to_the_first_row_and_NaN_wins(string shape)
    {
        float nan = BitConverter.Int32BitsToSingle(0x7FC01234);
        // Columns: +0 vs −0, −2 vs 2, ∞ vs NaN, 1 vs −3 vs 3.
        float[] stacked = [0f, -2f, float.PositiveInfinity, 1f, -0f, 2f, nan, -3f, -0f, 2f, 1f, 3f];
        var output = new float[4];
        GpuShapes.Get(shape).SelectLargestMagnitude(stacked, output);
        BitAssert.Identical([0f, -2f, nan, -3f], output, shape);
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void TallMask_matches_reference_and_cpu_exactly(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        int[] sizes = [.. s_sizes, 8, 9, 1031]; // whole bytes, one bit into the next, bytes across group strides
        foreach (float lambda in new[] { 0f, 0.4f, 1f, float.PositiveInfinity })
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] task = stacked[..n], multiTask = stacked[n..];
                (byte[] expected, long expectedSet) = MethodScalarReference.TallMask(task, multiTask, lambda);
                var cpu = new byte[expected.Length];
                long cpuSet = _cpu.TallMask(task, multiTask, lambda, cpu);
                byte[] actual = Enumerable.Repeat((byte)0xA5, expected.Length).ToArray(); // stale bytes must be overwritten
                long set = gpu.TallMask(task, multiTask, lambda, actual);
                string where = $"{shape} {context}, λ {lambda}";
                MethodKernelInputs.SameBytes(expected, actual, where);
                MethodKernelInputs.SameBytes(cpu, actual, where + " vs cpu");
                Assert.Equal(expectedSet, set);
                Assert.Equal(cpuSet, set);
            }, sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void TallRestore_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
        {
            float[] baseline = stacked[..n], multiTask = stacked[n..];
            var packed = new byte[(n + 7) / 8];
            random.NextBytes(packed); // trailing bits set too: they must be ignored
            var cpu = new float[n];
            var actual = new float[n];
            _cpu.TallRestore(baseline, multiTask, packed, cpu);
            gpu.TallRestore(baseline, multiTask, packed, actual);
            BitAssert.Equal(MethodScalarReference.TallRestore(baseline, multiTask, packed), actual, $"{shape} {context}");
            BitAssert.Equal(cpu, actual, $"{shape} {context} vs cpu");
        }, s_sizes);
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void TallMask_and_restore_reject_a_packed_buffer_of_the_wrong_size(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        var values = new float[9];
        Assert.Throws<ArgumentException>(() => gpu.TallMask(values, values, 1f, new byte[1]));
        Assert.Throws<ArgumentException>(() => gpu.TallMask(values, new float[8], 1f, new byte[2]));
        Assert.Throws<ArgumentException>(() => gpu.TallRestore(values, values, new byte[3], new float[9]));
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void ConsensusMerge_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[][] lambdaSets = [[0.4f], [0.2f, 1f, 0f], [0.5f, 0.6f, 0.3f, 1f, 0.4f]];
        foreach (float[] lambdas in lambdaSets)
        {
            foreach (int minAgreeing in new[] { 0, 2 })
            {
                MethodKernelInputs.ForEach(seed + lambdas.Length, lambdas.Length, (context, stacked, n) =>
                {
                    var cpu = new float[n];
                    var actual = new float[n];
                    _cpu.ConsensusMerge(stacked, lambdas, minAgreeing, cpu);
                    gpu.ConsensusMerge(stacked, lambdas, minAgreeing, actual);
                    string where = $"{shape} {context}, k {minAgreeing}";
                    BitAssert.Equal(MethodScalarReference.Consensus(stacked, lambdas, minAgreeing, n), actual, where);
                    BitAssert.Equal(cpu, actual, where + " vs cpu");
                }, s_sizes);
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void FisherMerge_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.3f, 2f, 0f]];
        foreach (float[] weights in weightSets)
        {
            foreach (float epsilon in new[] { 1e-8f, 0f })
            {
                MethodKernelInputs.ForEach(seed + weights.Length, 2 * weights.Length, (context, stacked, n) =>
                {
                    float[] models = stacked[..(weights.Length * n)], fisher = stacked[(weights.Length * n)..];
                    var cpu = new float[n];
                    var actual = new float[n];
                    _cpu.FisherMerge(models, fisher, weights, epsilon, cpu);
                    gpu.FisherMerge(models, fisher, weights, epsilon, actual);
                    string where = $"{shape} {context}, ε {epsilon}";
                    BitAssert.Equal(MethodScalarReference.Fisher(models, fisher, weights, epsilon, n), actual, where);
                    BitAssert.Equal(cpu, actual, where + " vs cpu");
                }, s_sizes);
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void NearSwap_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        foreach (float t in new[] { 0.001f, 0.5f, 1e30f, 0f, -0.5f })
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] v0 = stacked[..n], v1 = stacked[n..];
                var cpu = new float[n];
                var actual = new float[n];
                _cpu.NearSwap(v0, v1, t, cpu);
                gpu.NearSwap(v0, v1, t, actual);
                string where = $"{shape} {context}, t {t}";
                BitAssert.Equal(MethodScalarReference.NearSwap(v0, v1, t), actual, where);
                BitAssert.Equal(cpu, actual, where + " vs cpu");
            }, s_sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void RamMerge_and_counts_match_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        (float[] Scales, float Epsilon)[] settings = [([1f], 1e-5f), ([1.02f, 1f, 1.2f], 0.004f), ([1.1f, 1f, 1.3f, 0.9f, 1f], 1e-5f)];
        foreach ((float[] scales, float epsilon) in settings)
        {
            int rows = scales.Length;
            MethodKernelInputs.ForEach(seed + rows, rows + 1, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], deltas = stacked[n..];
                string where = $"{shape} {context}, ε {epsilon}";
                var cpu = new float[n];
                var actual = new float[n];
                _cpu.RamMerge(deltas, baseline, scales, epsilon, cpu);
                gpu.RamMerge(deltas, baseline, scales, epsilon, actual);
                BitAssert.Equal(MethodScalarReference.Ram(deltas, baseline, scales, epsilon), actual, where);
                BitAssert.Equal(cpu, actual, where + " vs cpu");

                // The counts are added to what the spans hold.
                (long[] shared, long[] unique) = MethodScalarReference.RamCounts(deltas, rows, epsilon);
                long[] actualShared = Enumerable.Repeat(5L, rows).ToArray(), actualUnique = Enumerable.Repeat(7L, rows).ToArray();
                gpu.RamContributionCounts(deltas, epsilon, actualShared, actualUnique);
                long[] cpuShared = new long[rows], cpuUnique = new long[rows];
                _cpu.RamContributionCounts(deltas, epsilon, cpuShared, cpuUnique);
                MethodKernelInputs.SameCounts([.. shared.Select(c => c + 5)], actualShared, where + " shared");
                MethodKernelInputs.SameCounts([.. unique.Select(c => c + 7)], actualUnique, where + " unique");
                MethodKernelInputs.SameCounts([.. cpuShared.Select(c => c + 5)], actualShared, where + " shared vs cpu");
                MethodKernelInputs.SameCounts([.. cpuUnique.Select(c => c + 7)], actualUnique, where + " unique vs cpu");
            }, s_sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void RamContributionCounts_count_every_element_of_a_long_row(string shape)
    {
        // Every delta above ε: each element counts once per model, shared (more than one contributor) or unique.
        const int n = 5003;
        var deltas = new float[2 * n];
        for (int i = 0; i < n; i++)
            deltas[i] = 1f;
        for (int i = 0; i < n; i += 3)
            deltas[n + i] = -1f;
        long[] shared = new long[2], unique = new long[2];
        GpuShapes.Get(shape).RamContributionCounts(deltas, 0.5f, shared, unique);
        long both = (n + 2) / 3;
        Assert.Equal([both, both], shared);
        Assert.Equal([n - both, 0L], unique);
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void VarianceAcrossRows_and_ClearRowsWhereZero_match_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        foreach (int rows in new[] { 1, 3, 5 })
        {
            MethodKernelInputs.ForEach(seed + rows, rows, (context, stacked, n) =>
            {
                string where = $"{shape} {context}";
                (float[] expected, long expectedNonzero) = MethodScalarReference.Variance(stacked, rows, n);
                var cpu = new float[n];
                long cpuNonzero = _cpu.VarianceAcrossRows(stacked, cpu);
                var actual = new float[n];
                long nonzero = gpu.VarianceAcrossRows(stacked, actual);
                BitAssert.Equal(expected, actual, where);
                BitAssert.Equal(cpu, actual, where + " vs cpu");
                Assert.Equal(expectedNonzero, nonzero);
                Assert.Equal(cpuNonzero, nonzero);

                // The first row as the selector: its ±0 entries (ties and specials hold many) clear every row.
                float[] selector = stacked[..n];
                float[] cleared = (float[])stacked.Clone();
                gpu.ClearRowsWhereZero(cleared, selector);
                float[] cpuCleared = (float[])stacked.Clone();
                _cpu.ClearRowsWhereZero(cpuCleared, selector);
                BitAssert.Identical(MethodScalarReference.ClearRowsWhereZero(stacked, selector), cleared, where + " clear");
                BitAssert.Identical(cpuCleared, cleared, where + " clear vs cpu");
            }, s_sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SignErasedMix_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[][] weightSets = [[1f], [0.2f, 0.7f, 0.1f], [0f, 0f, 0f]];
        foreach (float[] weights in weightSets)
        {
            MethodKernelInputs.ForEach(seed + weights.Length, weights.Length, (context, stacked, n) =>
            {
                var cpu = new float[n];
                var actual = new float[n];
                _cpu.SignErasedMix(stacked, weights, 1e-6f, cpu);
                gpu.SignErasedMix(stacked, weights, 1e-6f, actual);
                BitAssert.Equal(MethodScalarReference.SignErasedMix(stacked, weights, 1e-6f, n), actual, $"{shape} {context}");
                BitAssert.Equal(cpu, actual, $"{shape} {context} vs cpu");
            }, s_sizes);
        }
    }

    /// <summary>
    /// SCE's fused kernels (the interface's composition on the GPU: clear, then sum or mix and add the base) and its
    /// selection bits (the interface default on the GPU) give the CPU's fused bits (NaN payloads aside, as for every GPU kernel here).
    /// </summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SCE_fused_kernels_match_cpu(string shape)
    {
        IMergeKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[] weights = [0.2f, 0.7f, 0.1f];
        MethodKernelInputs.ForEach(seed, 5, (context, data, n) =>
        {
            string where = $"{shape} {context}";
            float[] stacked = data[..(3 * n)], selector = data[(3 * n)..(4 * n)], baseline = data[(4 * n)..];
            var cpu = new float[n];
            var actual = new float[n];
            _cpu.SignErasedMixOntoBase((float[])stacked.Clone(), selector, weights, 1e-6f, baseline, cpu);
            gpu.SignErasedMixOntoBase((float[])stacked.Clone(), selector, weights, 1e-6f, baseline, actual);
            BitAssert.Equal(cpu, actual, where + " mix vs cpu"); // NaN payloads as the GPU's other kernels: any NaN
            for (int k = 0; k < 3; k++)
            {
                double expected = _cpu.SumOfSquaresWhereSelected(stacked.AsSpan(k * n, n), selector);
                double sum = gpu.SumOfSquaresWhereSelected(((float[])stacked.Clone()).AsSpan(k * n, n), selector);
                Assert.True(double.IsNaN(expected) ? double.IsNaN(sum) : BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(sum),
                    $"{where}, row {k}: {sum:R} vs cpu {expected:R}");
            }
            double[] cpuSums = [1, 2, 3], gpuSums = [1, 2, 3];
            _cpu.AddSumsOfSquaresWhereSelected((float[])stacked.Clone(), n, selector, cpuSums);
            gpu.AddSumsOfSquaresWhereSelected((float[])stacked.Clone(), n, selector, gpuSums);
            for (int k = 0; k < 3; k++)
                Assert.True(double.IsNaN(cpuSums[k]) ? double.IsNaN(gpuSums[k]) : BitConverter.DoubleToInt64Bits(cpuSums[k]) == BitConverter.DoubleToInt64Bits(gpuSums[k]),
                    $"{where}, row {k} in one sweep: {gpuSums[k]:R} vs cpu {cpuSums[k]:R}");
            var cpuBits = new ulong[SelectionBits.WordCount(n)];
            var gpuBits = new ulong[cpuBits.Length];
            _cpu.PackSelection(selector, cpuBits);
            gpu.PackSelection(selector, gpuBits);
            Assert.True(cpuBits.AsSpan().SequenceEqual(gpuBits), where + " selection bits vs cpu");
            float[] cpuSelector = new float[n], gpuSelector = new float[n];
            _cpu.UnpackSelection(cpuBits, cpuSelector);
            gpu.UnpackSelection(cpuBits, gpuSelector);
            BitAssert.Identical(cpuSelector, gpuSelector, where + " selector from bits vs cpu");
        }, s_sizes);
    }

    /// <summary>
    /// SCE's selection as a cut (the interface defaults on the GPU: the top-k masks the variances and answers "not zero",
    /// the energies and the mix go through a selector) gives the CPU's selection, bits, energies and mix.
    /// </summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SCE_cut_kernels_match_cpu(string shape)
    {
        IMergeKernels gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        float[] weights = [0.3f, 0.7f];
        MethodKernelInputs.ForEach(seed, 4, (context, data, n) =>
        {
            string where = $"{shape} {context}";
            float[] stacked = data[..(2 * n)], variance = data[(2 * n)..(3 * n)], baseline = data[(3 * n)..];
            foreach (long k in new[] { 0L, 1, n / 3, n })
            {
                float[] cpuKeys = (float[])variance.Clone(), gpuKeys = (float[])variance.Clone();
                MagnitudeKeep cpuKeep = _cpu.SelectTopKCut(cpuKeys, k), gpuKeep = gpu.SelectTopKCut(gpuKeys, k);
                double[] cpuSums = [1, 2], gpuSums = [1, 2];
                ulong[] cpuBits = new ulong[SelectionBits.WordCount(n)], gpuBits = new ulong[SelectionBits.WordCount(n)];
                _cpu.AddSumsOfSquaresWhereKept((float[])stacked.Clone(), n, cpuKeys, cpuKeep, cpuSums, cpuBits);
                gpu.AddSumsOfSquaresWhereKept((float[])stacked.Clone(), n, gpuKeys, gpuKeep, gpuSums, gpuBits);
                Assert.True(cpuBits.AsSpan().SequenceEqual(gpuBits), $"{where}, k {k}: selection bits vs cpu");
                for (int r = 0; r < 2; r++)
                    Assert.True(double.IsNaN(cpuSums[r]) ? double.IsNaN(gpuSums[r]) : BitConverter.DoubleToInt64Bits(cpuSums[r]) == BitConverter.DoubleToInt64Bits(gpuSums[r]),
                        $"{where}, k {k}, row {r}: {gpuSums[r]:R} vs cpu {cpuSums[r]:R}");
                float[] cpu = new float[n], actual = new float[n];
                _cpu.SignErasedMixOntoBaseWhereKept((float[])stacked.Clone(), cpuBits, weights, 1e-6f, baseline, cpu);
                gpu.SignErasedMixOntoBaseWhereKept((float[])stacked.Clone(), cpuBits, weights, 1e-6f, baseline, actual);
                BitAssert.Equal(cpu, actual, $"{where}, k {k}: mix vs cpu");
            }
            int key = n == 0 ? 0 : BitConverter.SingleToInt32Bits(variance[n / 2]) & 0x7FFFFFFF;
            foreach (long ties in new[] { 0L, 1, 3, long.MaxValue / 2 })
            {
                MagnitudeKeep cpuCut = _cpu.CutAboveMagnitude(variance, key, ties, out long cpuTies);
                MagnitudeKeep gpuCut = gpu.CutAboveMagnitude(variance, key, ties, out long gpuTies);
                Assert.Equal(cpuTies, gpuTies);
                for (int i = 0; i < n; i++)
                    Assert.True(cpuCut.Keeps(i, variance[i]) == gpuCut.Keeps(i, variance[i]), $"{where}, ties {ties}, element {i}");
            }
        }, s_sizes);
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void Inputs_that_are_not_whole_rows_or_of_equal_length_are_rejected(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        Assert.Throws<ArgumentException>(() => gpu.SelectLargestMagnitude(new float[7], new float[2]));
        Assert.Throws<ArgumentException>(() => gpu.ConsensusMerge(new float[7], [1f, 1f], 1, new float[3]));
        Assert.Throws<ArgumentException>(() => gpu.RamContributionCounts(new float[7], 0f, new long[2], new long[2]));
        Assert.Throws<ArgumentException>(() => gpu.VarianceAcrossRows(new float[7], new float[2]));
        Assert.Throws<ArgumentException>(() => gpu.ClearRowsWhereZero(new float[7], new float[2]));
        Assert.Throws<ArgumentException>(() => gpu.NearSwap(new float[3], new float[2], 0.5f, new float[3]));
    }
}
