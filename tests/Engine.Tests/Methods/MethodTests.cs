using Weld.Engine.Methods;
using Weld.Kernels;
using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>Each merge method against <see cref="ScalarReference"/> on random tensors.</summary>
public class MethodTests
{
    private static readonly IMergeKernels Kernels = new CpuKernels();

    /// <summary>Random values rounded through bf16 so equal magnitudes (ties) are common, as in real deltas.</summary>
    private static float[] RandomTensor(Random random, int n, float scale = 0.02f, bool bf16 = true)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            float v = (float)(random.NextDouble() * 2 - 1) * scale;
            x[i] = bf16 ? BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u) : v;
        }
        return x;
    }

    private static (float[] Baseline, float[][] Models) RandomModels(int seed, int n, int k)
    {
        var random = new Random(seed);
        float[] baseline = RandomTensor(random, n, 1f);
        var models = new float[k][];
        for (int m = 0; m < k; m++)
        {
            // Fine-tunes: base + a small bf16-rounded delta, then the sum rounded to bf16 (stored checkpoints).
            float[] delta = RandomTensor(random, n, 0.01f);
            models[m] = new float[n];
            for (int i = 0; i < n; i++)
                models[m][i] = BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(baseline[i] + delta[i]) & 0xFFFF0000u);
        }
        return (baseline, models);
    }

    private static float[] Run(IMergeMethod method, float[]? baseline, float[][] models, Func<int, ResolvedParameters> perModel,
        ResolvedParameters global, ulong seed = 0)
    {
        int n = models[0].Length;
        var stacked = new float[models.Length * n];
        for (int m = 0; m < models.Length; m++) models[m].CopyTo(stacked, m * n);
        var output = new float[n];
        method.Merge(new TensorMergeInputs
        {
            Kernels = Kernels,
            TensorName = "model.layers.0.mlp.up_proj.weight",
            Shape = [n],
            Models = stacked,
            Base = baseline,
            ModelParameters = Enumerable.Range(0, models.Length).Select(perModel).ToArray(),
            Global = global,
            ModelIndices = Enumerable.Range(1, models.Length).ToArray(),
            Seed = seed,
            TensorHash = 12345,
        }, output);
        return output;
    }

    private static ResolvedParameters Defaults(IMergeMethod method, ParameterScope scope)
    {
        var p = new ResolvedParameters();
        foreach (var spec in method.Parameters)
            if (spec.Scope == scope && spec.Default is not null) p.Set(spec.Name, spec.Default);
        return p;
    }

    private static void AssertClose(float[] expected, float[] actual, float tolerance, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            float diff = MathF.Abs(expected[i] - actual[i]);
            Assert.True(diff <= tolerance * MathF.Max(1, MathF.Abs(expected[i])),
                $"{context}: element {i}: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }

    [Theory]
    [InlineData(1, 1001, 3, 0.3)]
    [InlineData(2, 4097, 2, 0.5)]
    [InlineData(3, 65537, 4, 0.1)]
    [InlineData(4, 333, 3, 1.0)]
    public void Ties_matches_reference(int seed, int n, int k, double density)
    {
        var (baseline, models) = RandomModels(seed, n, k);
        float[] weights = Enumerable.Range(0, k).Select(m => 0.5f + 0.25f * m).ToArray();
        var method = new Ties();
        float[] actual = Run(method, baseline, models,
            m => Defaults(method, ParameterScope.PerModel).Set("weight", (double)weights[m]).Set("density", density),
            Defaults(method, ParameterScope.Global));
        float[] expected = ScalarReference.TaskVectors(baseline, models, weights,
            (_, d) => ScalarReference.TopK(d, MagnitudeCounts.KeepCount(density, n)), signConsensus: true, normalize: true, lambda: 1);
        AssertClose(expected, actual, 0, $"seed {seed}");
    }

    [Theory]
    [InlineData(5, 999, 3, 0.7)]
    [InlineData(6, 20001, 2, 0.25)]
    public void Task_arithmetic_matches_reference(int seed, int n, int k, double lambda)
    {
        var (baseline, models) = RandomModels(seed, n, k);
        float[] weights = Enumerable.Range(0, k).Select(m => 1f - 0.2f * m).ToArray();
        var method = new TaskArithmetic();
        float[] actual = Run(method, baseline, models,
            m => Defaults(method, ParameterScope.PerModel).Set("weight", (double)weights[m]),
            Defaults(method, ParameterScope.Global).Set("lambda", lambda));
        float[] expected = ScalarReference.TaskVectors(baseline, models, weights, (_, d) => d, false, false, (float)lambda);
        AssertClose(expected, actual, 0, $"seed {seed}");
    }

    [Theory]
    [InlineData(7, 5003, 3, 0.5, 0.05)]
    [InlineData(8, 1000, 2, 0.9, 0.01)]
    [InlineData(9, 50, 2, 0.5, 0.0)] // n_top = 0: Weld drops no top element (mergekit would keep nothing)
    public void Breadcrumbs_matches_reference(int seed, int n, int k, double density, double gamma)
    {
        var (baseline, models) = RandomModels(seed, n, k);
        float[] weights = Enumerable.Repeat(1f / k, k).ToArray();
        var method = new Breadcrumbs();
        float[] actual = Run(method, baseline, models,
            m => Defaults(method, ParameterScope.PerModel).Set("weight", (double)weights[m]).Set("density", density).Set("gamma", gamma),
            Defaults(method, ParameterScope.Global));
        var (bottom, top) = MagnitudeCounts.BreadcrumbsCuts(density, gamma, n);
        Assert.Equal((long)(density * n), n - bottom - top);
        float[] expected = ScalarReference.TaskVectors(baseline, models, weights,
            (_, d) => ScalarReference.Band(d, bottom, top), false, false, 1);
        AssertClose(expected, actual, 0, $"seed {seed}");
    }

    [Fact]
    public void Linear_normalizes_by_the_weight_sum()
    {
        var (_, models) = RandomModels(10, 777, 3);
        float[] weights = [1f, 2f, 0.5f];
        var method = new Linear();
        float[] actual = Run(method, null, models, m => new ResolvedParameters().Set("weight", (double)weights[m]),
            Defaults(method, ParameterScope.Global));
        var expected = new float[777];
        for (int i = 0; i < expected.Length; i++)
        {
            float sum = 0;
            for (int m = 0; m < 3; m++) sum += weights[m] * models[m][i];
            expected[i] = sum / 3.5f;
        }
        AssertClose(expected, actual, 0, "linear");
    }

    [Fact]
    public void Slerp_matches_the_spherical_formula_and_its_endpoints()
    {
        var random = new Random(11);
        float[] v0 = RandomTensor(random, 4099, 1f, bf16: false);
        float[] v1 = RandomTensor(random, 4099, 1f, bf16: false);
        var method = new Slerp();
        foreach (double t in new[] { 0.0, 0.3, 1.0 })
        {
            float[] actual = Run(method, v0, [v1], _ => new ResolvedParameters(), new ResolvedParameters().Set("t", t));
            double n0 = Math.Sqrt(v0.Sum(x => (double)x * x)), n1 = Math.Sqrt(v1.Sum(x => (double)x * x));
            double dot = v0.Zip(v1, (a, b) => (double)a * b).Sum() / (n0 * n1);
            double omega = Math.Acos(dot);
            double s0 = Math.Sin((1 - t) * omega) / Math.Sin(omega), s1 = Math.Sin(t * omega) / Math.Sin(omega);
            float[] expected = v0.Zip(v1, (a, b) => (float)s0 * a + (float)s1 * b).ToArray();
            AssertClose(expected, actual, 1e-5f, $"t={t}");
        }
    }

    [Fact]
    public void Slerp_of_nearly_parallel_tensors_falls_back_to_lerp()
    {
        var random = new Random(12);
        float[] v0 = RandomTensor(random, 1000, 1f, bf16: false);
        float[] v1 = v0.Select(x => x * 1.5f).ToArray();
        float[] actual = Run(new Slerp(), v0, [v1], _ => new ResolvedParameters(), new ResolvedParameters().Set("t", 0.25));
        float[] expected = v0.Zip(v1, (a, b) => 0.75f * a + 0.25f * b).ToArray();
        AssertClose(expected, actual, 0, "lerp");
    }

    [Fact]
    public void Model_stock_matches_its_formula()
    {
        var (baseline, models) = RandomModels(13, 3001, 3);
        float[] actual = Run(new ModelStock(), baseline, models.Select(m => (float[])m.Clone()).ToArray(),
            _ => new ResolvedParameters(), new ResolvedParameters().Set("filter_wise", false));
        var deltas = models.Select(m => m.Zip(baseline, (a, b) => (double)a - b).ToArray()).ToArray();
        double cos = 0;
        int pairs = 0;
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++)
            {
                double dot = deltas[i].Zip(deltas[j], (a, b) => a * b).Sum();
                double norm = Math.Sqrt(deltas[i].Sum(x => x * x)) * Math.Sqrt(deltas[j].Sum(x => x * x));
                cos += dot / norm;
                pairs++;
            }
        cos /= pairs;
        double t = 3 * cos / (1 + 2 * cos);
        float[] expected = new float[3001];
        for (int i = 0; i < expected.Length; i++)
        {
            double avg = (models[0][i] + (double)models[1][i] + models[2][i]) / 3;
            expected[i] = (float)(t * avg + (1 - t) * baseline[i]);
        }
        AssertClose(expected, actual, 1e-5f, "model_stock");
    }

    [Fact]
    public void Dare_with_the_same_seed_gives_the_same_bits_and_keeps_about_density()
    {
        var (baseline, models) = RandomModels(14, 100_003, 2);
        var method = new DareTies();
        ResolvedParameters PerModel(int m) => Defaults(method, ParameterScope.PerModel).Set("weight", 1.0).Set("density", 0.3);
        float[] a = Run(method, baseline, models.Select(m => (float[])m.Clone()).ToArray(), PerModel, Defaults(method, ParameterScope.Global), seed: 42);
        float[] b = Run(method, baseline, models.Select(m => (float[])m.Clone()).ToArray(), PerModel, Defaults(method, ParameterScope.Global), seed: 42);
        float[] c = Run(method, baseline, models.Select(m => (float[])m.Clone()).ToArray(), PerModel, Defaults(method, ParameterScope.Global), seed: 43);
        Assert.Equal(a.Select(BitConverter.SingleToUInt32Bits), b.Select(BitConverter.SingleToUInt32Bits));
        Assert.NotEqual(a.Select(BitConverter.SingleToUInt32Bits), c.Select(BitConverter.SingleToUInt32Bits));
        // An element stays at the base exactly when every model's delta there was dropped or was 0 already:
        // its probability is the product over models of (delta == 0 ? 1 : 1 - density).
        double expectedUnchanged = 0, variance = 0;
        for (int i = 0; i < baseline.Length; i++)
        {
            double p = 1;
            foreach (float[] m in models) p *= m[i] == baseline[i] ? 1 : 0.7;
            expectedUnchanged += p;
            variance += p * (1 - p);
        }
        int unchanged = a.Where((v, i) => v == baseline[i]).Count();
        Assert.InRange(unchanged, expectedUnchanged - 5 * Math.Sqrt(variance), expectedUnchanged + 5 * Math.Sqrt(variance));
    }

    [Fact]
    public void Ties_at_a_density_that_keeps_nothing_returns_the_base()
    {
        var (baseline, models) = RandomModels(15, 999, 2);
        var method = new Ties();
        float[] actual = Run(method, baseline, models,
            _ => Defaults(method, ParameterScope.PerModel).Set("weight", 1.0).Set("density", 1e-6),
            Defaults(method, ParameterScope.Global));
        Assert.Equal(baseline, actual);
    }

    [Fact]
    public void NaN_inputs_propagate_through_linear_and_never_win_a_ties_election()
    {
        var (baseline, models) = RandomModels(16, 101, 3);
        models[0][7] = float.NaN;
        var linear = new Linear();
        float[] soup = Run(linear, null, models.Select(m => (float[])m.Clone()).ToArray(),
            _ => new ResolvedParameters().Set("weight", 1.0), Defaults(linear, ParameterScope.Global));
        Assert.True(float.IsNaN(soup[7]));
        Assert.Equal(100, soup.Count(float.IsFinite));

        var ties = new Ties();
        float[] merged = Run(ties, baseline, models.Select(m => (float[])m.Clone()).ToArray(),
            _ => Defaults(ties, ParameterScope.PerModel).Set("weight", 1.0).Set("density", 1.0),
            Defaults(ties, ParameterScope.Global));
        // The NaN task vector entry is kept by the trim (largest magnitude) but never agrees with the elected
        // sign, so the element is the disjoint mean of the other models' agreeing entries: finite.
        Assert.All(merged, v => Assert.True(float.IsFinite(v)));
        // With a NaN in the weighted sum the election falls to −1 (NaN >= 0 is false): element 7 is the base plus
        // the mean of the other models' negative deltas there (or the base if there are none).
        float d1 = models[1][7] - baseline[7], d2 = models[2][7] - baseline[7];
        float sum = 0, count = 0;
        foreach (float d in new[] { d1, d2 })
            if (d < 0) { sum += d; count++; }
        Assert.Equal(baseline[7] + (count == 0 ? 0 : sum / count), merged[7]);
    }
}
