using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The interpolation GPU kernels (<c>Gpu/InterpolationKernels.cs</c>, <c>Gpu/SoftmaxDivergence.cs</c>) against
/// <see cref="InterpolationScalarReference"/> and the CPU backend on every accelerator shape: odd sizes, sizes across
/// group and grid boundaries, NaN/±∞ and ties. Bit for bit; the softmax scores too (every backend runs fdlibm's exp and
/// log), and within a few ulps of a reference on .NET's exp and log.
/// </summary>
public sealed class InterpolationKernelsTests
{
    private static readonly int[] s_sizes = [0, 1, 7, 17, 64, 65, 129, 4099];

    /// <summary>(rows, row length): empty, single elements, short rows, rows across group and grid strides.</summary>
    private static readonly (int Rows, int RowLength)[] s_rowShapes = [(0, 5), (1, 1), (3, 7), (5, 13), (1, 4099), (3, 1031)];

    private readonly CpuKernels _cpu = new(2);

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void ScaleFromBase_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        foreach (float scale in InterpolationInputs.Scales)
        {
            MethodKernelInputs.ForEach(seed, 2, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], merged = stacked[n..];
                float[] expected = InterpolationScalarReference.ScaleFromBase(baseline, merged, scale);
                float[] cpu = (float[])merged.Clone();
                _cpu.ScaleFromBase(baseline, cpu, scale);
                gpu.ScaleFromBase(baseline, merged, scale);
                string where = $"{shape} {context}, scale {scale}";
                BitAssert.Equal(expected, merged, where);
                BitAssert.Equal(cpu, merged, where + " vs cpu");
            }, s_sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void KeepImportantChanges_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        foreach (float threshold in InterpolationInputs.Thresholds)
        {
            MethodKernelInputs.ForEach(seed, 3, (context, stacked, n) =>
            {
                float[] baseline = stacked[..n], model = stacked[n..(2 * n)], scores = stacked[(2 * n)..];
                float[] expected = InterpolationScalarReference.KeepImportantChanges(baseline, model, threshold, scores);
                float[] cpu = (float[])scores.Clone();
                _cpu.KeepImportantChanges(baseline, model, threshold, cpu);
                gpu.KeepImportantChanges(baseline, model, threshold, scores);
                string where = $"{shape} {context}, threshold {threshold}";
                BitAssert.Equal(expected, scores, where);
                BitAssert.Equal(cpu, scores, where + " vs cpu");
            }, s_sizes);
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void AxpbyRows_matches_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach ((int rows, int rowLength) in s_rowShapes)
        {
            foreach (string kind in new[] { "plain", "ties", "plain+specials", "ties+specials" })
            {
                int n = rows * rowLength;
                float[] stacked = MethodKernelInputs.Stacked(random, kind, 2, n);
                float[] values = stacked[..n], baseline = stacked[n..];
                float[] valueWeights = InterpolationInputs.Weights(random, rows), baseWeights = InterpolationInputs.Weights(random, rows);
                float[] expected = InterpolationScalarReference.AxpbyRows(values, valueWeights, baseline, baseWeights);
                float[] cpu = (float[])values.Clone();
                _cpu.AxpbyRows(cpu, valueWeights, baseline, baseWeights);
                gpu.AxpbyRows(values, valueWeights, baseline, baseWeights);
                string where = $"{shape} seed {seed}, rows {rows}, row length {rowLength}, {kind}";
                BitAssert.Equal(expected, values, where);
                BitAssert.Equal(cpu, values, where + " vs cpu");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void AxpbyRows_rejects_values_that_do_not_split_into_the_rows(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        Assert.Throws<ArgumentException>(() => gpu.AxpbyRows(new float[7], [1f, 1f], new float[7], [0f, 0f]));
        Assert.Throws<ArgumentException>(() => gpu.AxpbyRows(new float[6], [1f, 1f], new float[6], [0f]));
        Assert.Throws<ArgumentException>(() => gpu.AxpbyRows(new float[6], [1f, 1f], new float[5], [0f, 0f]));
    }

    /// <summary>
    /// Every accelerator runs fdlibm's exp and log (<see cref="Float64Math"/>), as the CPU backend does, so the scores
    /// equal the fdlibm reference and the CPU's bit for bit on the emulator and on CUDA; against .NET's exp and log they
    /// are within 4 float32 ulps (NaN where it is NaN, ±∞ and zeros exactly), as the contract allows.
    /// </summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SoftmaxDivergenceScores_match_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach ((int rows, int rowLength) in new[] { (1, 1), (3, 7), (5, 13), (2, 1031), (40, 64), (70, 3) })
        {
            foreach (string kind in new[] { "plain", "ties", "plain+specials", "ties+specials" })
            {
                int n = rows * rowLength;
                float[] stacked = MethodKernelInputs.Stacked(random, kind, 2, n);
                float[] model = stacked[..n], baseline = stacked[n..];
                string where = $"{shape} seed {seed}, rows {rows}, row length {rowLength}, {kind}";
                var cpu = new float[n];
                _cpu.SoftmaxDivergenceScores(model, baseline, rowLength, cpu);
                var actual = new float[n];
                gpu.SoftmaxDivergenceScores(model, baseline, rowLength, actual);
                BitAssert.Equal(InterpolationScalarReference.SoftmaxDivergenceScoresFdlibm(model, baseline, rowLength), actual, where);
                BitAssert.Equal(cpu, actual, where + " vs cpu");
                BitAssert.WithinUlps(InterpolationScalarReference.SoftmaxDivergenceScores(model, baseline, rowLength), actual, 4,
                    where + " vs .NET's exp and log");
            }
        }
    }

    /// <summary>The per-row D and the gate that forms the scores from them: the reference's and the CPU's bits.</summary>
    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SoftmaxDivergences_and_their_gate_match_reference_and_cpu(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        foreach ((int rows, int rowLength) in new[] { (1, 1), (3, 7), (2, 1031), (70, 3), (9, 2048) })
        {
            (float[] model, float[] baseline) = InterpolationInputs.WeightRows(random, rows, rowLength);
            string where = $"{shape} seed {seed}, rows {rows}, row length {rowLength}";
            var divergences = new float[rows];
            gpu.SoftmaxDivergences(model, baseline, divergences);
            BitAssert.Equal(InterpolationScalarReference.SoftmaxDivergencesFdlibm(model, baseline, rowLength), divergences, where);
            var scores = new float[model.Length];
            _cpu.SoftmaxDivergenceScores(model, baseline, rowLength, scores);
            float median = scores.Order().ElementAt(scores.Length / 2);
            foreach (float threshold in InterpolationInputs.Thresholds.Append(median))
            {
                var expected = (float[])scores.Clone();
                _cpu.KeepImportantChanges(baseline, model, threshold, expected);
                var merged = new float[model.Length];
                gpu.KeepImportantChanges(baseline, model, divergences, threshold, merged);
                BitAssert.Identical(expected, merged, $"{where}, threshold {threshold}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SoftmaxDivergenceScores_of_equal_rows_are_zero(string shape)
    {
        // Equal rows: P = Q, so every log is log(1) = 0 and D = +0 on any backend; the scores are |0|·0 = +0.
        float[] row = [0.5f, -1.25f, 3f, 0f, 2f, -0.75f];
        var scores = Enumerable.Repeat(1f, row.Length).ToArray();
        GpuShapes.Get(shape).SoftmaxDivergenceScores(row, row, 3, scores);
        BitAssert.Identical(new float[row.Length], scores, shape);
    }

    [Theory]
    [MemberData(nameof(GpuShapes.All), MemberType = typeof(GpuShapes))]
    public void SoftmaxDivergenceScores_rejects_a_length_that_is_not_whole_rows(string shape)
    {
        var gpu = GpuShapes.Get(shape);
        Assert.Throws<ArgumentException>(() => gpu.SoftmaxDivergenceScores(new float[7], new float[7], 3, new float[7]));
        Assert.Throws<ArgumentException>(() => gpu.SoftmaxDivergenceScores(new float[6], new float[6], 0, new float[6]));
    }

    /// <summary>
    /// The float64 exp and log the softmax kernel runs on CUDA (fdlibm's, <see cref="Float64Math"/>), run here on the CPU
    /// with the same IEEE operations: within one float64 ulp of .NET's on logits, probabilities, ratios, the range edges,
    /// subnormals and the special values (exact there).
    /// </summary>
    [Fact]
    public void Float64Math_exp_and_log_are_within_one_ulp_of_the_runtime()
    {
        int seed = TestData.NewSeed();
        var random = new System.Random(seed);
        var arguments = new List<double> { 0.0, -0.0, 1.0, -1.0, 0.5, 709.78, 709.782712893384, 709.8, -745.1, -745.2, -708.5, -730.0, 1e-300,
            3e-9, -3e-9, 0.34657359, 0.3465736, 1.0397207708, -1.0397208, double.Epsilon, double.MaxValue, double.MinValue,
            double.PositiveInfinity, double.NegativeInfinity, double.NaN };
        for (int i = 0; i < 20000; i++)
        {
            arguments.Add(-random.NextDouble() * 60); // softmax: x − max ≤ 0
            arguments.Add((random.NextDouble() - 0.5) * 1460);
            arguments.Add(Math.Exp((random.NextDouble() - 0.5) * 40)); // ratios of probabilities
            arguments.Add(1 + (random.NextDouble() - 0.5) * 1e-5); // near 1, where log is most delicate
            arguments.Add(BitConverter.Int64BitsToDouble(random.NextInt64(1, 0x7FF0000000000000))); // any positive double
        }
        foreach (double x in arguments)
        {
            CloseInUlps(Math.Exp(x), Float64Math.ExpFdlibm(x), $"seed {seed}: exp({x:R})");
            CloseInUlps(Math.Log(x), Float64Math.LogFdlibm(x), $"seed {seed}: log({x:R})");
        }
    }

    private static void CloseInUlps(double expected, double actual, string context)
    {
        if (double.IsNaN(expected) || !double.IsFinite(expected) || expected == 0)
        {
            Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual)
                || (double.IsNaN(expected) && double.IsNaN(actual)), $"{context} is {actual:R}, expected {expected:R}");
            return;
        }
        long distance = Math.Abs(BitConverter.DoubleToInt64Bits(expected) - BitConverter.DoubleToInt64Bits(actual));
        Assert.True(Math.Sign(expected) == Math.Sign(actual) && distance <= 1, $"{context} is {actual:R}, expected {expected:R}");
    }
}
