using Weld.Engine.Methods;
using Xunit;
using static Weld.Engine.Tests.Methods.MethodHarness;

namespace Weld.Engine.Tests.Methods;

/// <summary>The methods beyond TIES/DARE/Breadcrumbs/SLERP/Model Stock, each against <see cref="MergeKitReference"/>.</summary>
public class MoreMethodTests
{
    public static TheoryData<long[]> DellaShapes => new() { new long[] { 1001 }, new long[] { 37, 53 }, new long[] { 5, 7, 9 } };

    [Theory]
    [MemberData(nameof(DellaShapes))]
    public void Della_matches_magprune_then_ties_consensus(long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        var (baseline, models) = RandomModels(21, n, 3);
        double[] density = [0.5, 0.3, 0.7];
        double[] epsilon = [0.15, 0.1, 0.2];
        float[] weights = [1f, 0.6f, 0.8f];
        float[] actual = Run(new Della(), baseline, models, shape,
            (m, p) => p.Set("weight", (double)weights[m]).Set("density", density[m]).Set("epsilon", epsilon[m]));
        float[] expected = ScalarReference.TaskVectors(baseline, models, weights,
            (m, d) => MergeKitReference.RescaleL1(d, MergeKitReference.DellaMagprune(d, shape, density[m], epsilon[m], Key(m))),
            signConsensus: true, normalize: true, lambda: 1);
        AssertBits(expected, actual, "della");
    }

    [Theory]
    [MemberData(nameof(DellaShapes))]
    public void Della_linear_matches_magprune_then_weighted_sum(long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        var (baseline, models) = RandomModels(22, n, 2);
        float[] weights = [0.7f, 0.5f];
        float[] actual = Run(new DellaLinear(), baseline, models, shape,
            (m, p) => p.Set("weight", (double)weights[m]).Set("density", 0.4),
            g => g.Set("lambda", 1.5));
        float[] expected = ScalarReference.TaskVectors(baseline, models, weights,
            (m, d) => MergeKitReference.RescaleL1(d, MergeKitReference.DellaMagprune(d, shape, 0.4, 0.15, Key(m))),
            signConsensus: false, normalize: false, lambda: 1.5f);
        AssertBits(expected, actual, "della_linear");
    }

    [Fact]
    public void Della_inverse_density_divides_each_kept_entry_by_its_own_probability()
    {
        long[] shape = [19, 31];
        var (baseline, models) = RandomModels(23, 19 * 31, 1);
        float[] actual = Run(new DellaLinear(), baseline, models, shape,
            (_, p) => p.Set("weight", 1.0).Set("density", 0.5).Set("epsilon", 0.3),
            g => g.Set("rescale_norm", "inverse_density"));
        float[] expected = ScalarReference.TaskVectors(baseline, models, [1f],
            (m, d) => MergeKitReference.DellaMagprune(d, shape, 0.5, 0.3, Key(m), divideByP: true), false, false, 1);
        AssertBits(expected, actual, "della inverse_density");
    }

    [Fact]
    public void Della_keeps_density_on_average_and_favours_large_magnitudes()
    {
        const int n = 200_000;
        var random = new Random(24);
        float[] delta = RandomTensor(random, n, 1f, bf16: false);
        var baseline = new float[n];
        float[] actual = Run(new DellaLinear(), baseline, [delta], [n],
            (_, p) => p.Set("weight", 1.0).Set("density", 0.4).Set("epsilon", 0.3), g => g.Set("rescale", false));
        int kept = actual.Count(x => x != 0);
        Assert.InRange(kept, (int)(0.39 * n), (int)(0.41 * n));
        // p runs linearly from 0.1 (smallest |δ|) to 0.7 (largest): the extreme tenths keep about 0.13 and 0.67.
        int[] order = Enumerable.Range(0, n).OrderBy(i => Math.Abs(delta[i])).ToArray();
        double bottom = order.Take(n / 10).Count(i => actual[i] != 0) / (n / 10.0);
        double top = order.Skip(n - n / 10).Count(i => actual[i] != 0) / (n / 10.0);
        Assert.InRange(bottom, 0.11, 0.15);
        Assert.InRange(top, 0.65, 0.69);
    }

    [Fact]
    public void Della_refuses_density_minus_epsilon_at_or_below_zero()
    {
        var (baseline, models) = RandomModels(25, 100, 1);
        var error = Assert.Throws<WeldException>(() => Run(new Della(), baseline, models, [100],
            (_, p) => p.Set("weight", 1.0).Set("density", 0.1).Set("epsilon", 0.15)));
        Assert.Contains("model.layers.1.mlp.down_proj.weight", error.Message);
        Assert.Contains("epsilon", error.Message);
    }

    [Theory]
    [InlineData(31, 1.0)]
    [InlineData(32, 0.3)]
    public void Sce_matches_select_calculate_erase(int seed, double topK)
    {
        var (baseline, models) = RandomModels(seed, 4099, 3);
        float[] actual = Run(new Sce(), baseline, models, [4099], global: g => g.Set("select_topk", topK));
        AssertBits(MergeKitReference.Sce(baseline, models, topK), actual, $"sce topk {topK}");
    }

    [Fact]
    public void Sce_takes_uniform_weights_when_the_total_energy_is_below_1e_minus_6()
    {
        // Deltas of about 1e-4: mean(δ²) ≈ 3e-9 per model, far below mergekit's 1e-6 cut.
        var (baseline, models) = RandomModels(34, 1031, 3, deltaScale: 1e-4f);
        float[] actual = Run(new Sce(), baseline, models, [1031]);
        AssertBits(MergeKitReference.Sce(baseline, models, 1.0), actual, "sce uniform weights");
        // With uniform weights an entry where all three agree is their plain mean.
        int agreeing = Enumerable.Range(0, 1031).First(i =>
            models.All(m => m[i] - baseline[i] > 0));
        float mean = 0;
        foreach (float[] m in models) mean += (m[agreeing] - baseline[agreeing]) * (1f / 3);
        Assert.Equal(baseline[agreeing] + mean / (3 * (1f / 3)), actual[agreeing], 6);
    }

    [Fact]
    public void Sce_floors_the_divisor_at_1e_minus_6()
    {
        // Model A changes most entries by 1 (entry 1 not at all); model B changes every entry by 1e-4, so its
        // weight is about 1.4e-8 and at entry 1 it alone agrees: Σ erased weights = w_B < 1e-6 is floored.
        const int n = 7;
        float[] baseline = new float[n];
        float[] a = [1, 0, 1, 1, -1, 1, 1];
        float[] b = Enumerable.Repeat(1e-4f, n).ToArray();
        float[] actual = Run(new Sce(), baseline, [a, b], [n]);
        AssertBits(MergeKitReference.Sce(baseline, [a, b], 1.0), actual, "sce divisor floor");
        double energyA = 6.0 / n, energyB = 1e-8;
        float weightB = (float)(energyB / (energyA + energyB));
        double expected = 1e-4 * weightB / 1e-6; // bits are checked above; this pins the floor's effect
        Assert.InRange(actual[1], expected * (1 - 1e-6), expected * (1 + 1e-6));
        Assert.True(actual[1] < 1e-5f, "the floor shrinks the lone agreeing entry");
    }

    [Fact]
    public void Sce_of_unchanged_models_is_the_base()
    {
        var (baseline, _) = RandomModels(33, 513, 1);
        float[] actual = Run(new Sce(), baseline, [(float[])baseline.Clone(), (float[])baseline.Clone()], [513]);
        AssertBits(baseline, actual, "sce zero task vectors");
    }

    [Theory]
    [InlineData(true, false, false)]
    [InlineData(false, false, false)]
    [InlineData(true, true, false)]
    [InlineData(true, false, true)]
    public void NuSlerp_matches_reference(bool withBase, bool rows, bool columns)
    {
        const int r = 23, c = 41;
        var (baseline, models) = RandomModels(41, r * c, 2, deltaScale: 0.2f);
        float[] actual = Run(new NuSlerp(), withBase ? baseline : null, models, [r, c],
            (m, p) => p.Set("weight", m == 0 ? 0.3 : 0.9),
            g => g.Set("nuslerp_flatten", !(rows || columns)).Set("nuslerp_row_wise", columns));
        float[] expected = MergeKitReference.NuSlerp(withBase ? baseline : null, models[0], models[1], 0.3, 0.9,
            rows ? c : r * c, columns, r);
        AssertClose(expected, actual, 2e-6, "nuslerp");
    }

    [Fact]
    public void NuSlerp_with_weights_summing_to_zero_takes_the_midpoint()
    {
        var (baseline, models) = RandomModels(42, 777, 2, deltaScale: 0.2f);
        float[] actual = Run(new NuSlerp(), baseline, models, [777], (m, p) => p.Set("weight", m == 0 ? 1.0 : -1.0));
        AssertClose(MergeKitReference.NuSlerp(baseline, models[0], models[1], 0.5, 0.5, 777), actual, 2e-6, "t = 0.5");
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    public void MultiSlerp_matches_reference(bool withBase, bool normalizeWeights)
    {
        var (baseline, models) = RandomModels(51, 3001, 3, deltaScale: 0.2f);
        double[] weights = [0.5, 0.3, 0.2];
        float[] actual = Run(new MultiSlerp(), withBase ? baseline : null, models, [3001],
            (m, p) => p.Set("weight", weights[m]), g => g.Set("normalize_weights", normalizeWeights));
        float[] expected = MergeKitReference.MultiSlerp(withBase ? baseline : null, models, weights, normalizeWeights);
        AssertClose(expected, actual, 2e-6, "multislerp");
    }

    [Fact]
    public void MultiSlerp_of_one_model_is_that_model_and_of_opposite_pair_falls_back_to_lerp()
    {
        var (baseline, models) = RandomModels(52, 999, 1);
        AssertBits(models[0], Run(new MultiSlerp(), baseline, models, [999], (_, p) => p.Set("weight", 1.0)), "one model");

        float[] opposite = models[0].Select((x, i) => 2 * baseline[i] - x).ToArray(); // δ and −δ, equal weights
        float[] actual = Run(new MultiSlerp(), baseline, [models[0], opposite], [999], (_, p) => p.Set("weight", 1.0));
        float[] expected = MergeKitReference.MultiSlerp(baseline, [models[0], opposite], [1, 1]);
        AssertClose(expected, actual, 1e-6, "antipodal pair");
    }

    [Fact]
    public void Karcher_matches_reference_and_skips_zero_tensors()
    {
        var (_, models) = RandomModels(61, 2049, 3, deltaScale: 0.3f);
        AssertClose(MergeKitReference.Karcher(models), Run(new Karcher(), null, models, [2049]), 2e-6, "karcher");

        float[][] withZero = [models[0], new float[2049], models[1]];
        AssertClose(MergeKitReference.Karcher(withZero), Run(new Karcher(), null, withZero, [2049]), 2e-6, "with a zero tensor");

        AssertClose(MergeKitReference.Karcher(models, maxIterations: 1),
            Run(new Karcher(), null, models, [2049], global: g => g.Set("max_iter", 1.0)), 2e-6, "one iteration");
    }

    [Fact]
    public void NearSwap_matches_reference_bit_for_bit()
    {
        var (baseline, models) = RandomModels(71, 5003, 1, deltaScale: 0.05f);
        models[0][10] = baseline[10]; // identical values: t / 0 = inf → weight 1
        foreach (double t in new[] { 0.001, 0.02, 5.0 })
        {
            float[] actual = Run(new NearSwap(), baseline, models, [5003], global: g => g.Set("t", t));
            AssertBits(MergeKitReference.NearSwap(baseline, models[0], t), actual, $"t = {t}");
            Assert.Equal(models[0][10], actual[10]);
        }
    }

    [Theory]
    [InlineData(81, new long[] { 41, 67 })]
    [InlineData(82, new long[] { 2999 })]
    public void ArceeFusion_matches_reference(int seed, long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        var (baseline, models) = RandomModels(seed, n, 1, deltaScale: 0.1f);
        float[] actual = Run(new ArceeFusion(), baseline, models, shape);
        float[] expected = MergeKitReference.ArceeFusion(baseline, models[0], (int)shape[^1]);
        AssertBits(expected, actual, "arcee_fusion");
        int changed = Enumerable.Range(0, n).Count(i => actual[i] != baseline[i]);
        // The fusion keeps only outlying changes. A 1-D tensor has one KL factor, so its scores are |Δ| scaled:
        // uniform deltas have no outliers above median + 1.5·IQR and nothing changes.
        Assert.InRange(changed, shape.Length == 2 ? 1 : 0, shape.Length == 2 ? n / 2 : 0);
    }

    [Theory]
    [InlineData(new long[] { 613, 2048 })] // above 10⁶ elements: the quantiles of a Philox sample
    [InlineData(new long[] { 1_000_003 })] // one row, a draw count that is not a multiple of the Philox block
    public void ArceeFusion_above_a_million_elements_gates_at_the_sorted_sample_threshold(long[] shape)
    {
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        int rowLength = (int)shape[^1];
        var (baseline, models) = RandomModels(83, n, 1, deltaScale: 0.1f);
        for (int i = 0; i < n; i += 101)
            models[0][i] = baseline[i] + 20 * (models[0][i] - baseline[i]); // outlying changes, for the gate to keep
        float[] actual = Run(new ArceeFusion(), baseline, models, shape);

        // The scores from the kernel (bit-checked against a scalar reference in Kernels.Tests); the sample drawn
        // position by position from the Philox stream, sorted, and the quantiles read off as the method documents.
        var scores = new float[n];
        MethodHarness.Kernels.SoftmaxDivergenceScores(models[0], baseline, rowLength, scores);
        var key = new Weld.Kernels.PhiloxKey(7, TensorHash, 1);
        var sample = new float[1_000_000];
        for (int j = 0; j < sample.Length; j++)
            sample[j] = scores[(int)((Weld.Kernels.Random.Philox4x32.ElementBits(key, j) * (ulong)n) >> 32)];
        Array.Sort(sample);
        float last = sample.Length - 1;
        float threshold = sample[(int)(0.5f * last)] + 1.5f * (sample[(int)(0.75f * last)] - sample[(int)(0.25f * last)]);
        float[] expected = Enumerable.Range(0, n).Select(i => baseline[i] + (models[0][i] - baseline[i]) * (scores[i] >= threshold ? 1f : 0f)).ToArray();
        AssertBits(expected, actual, $"arcee_fusion {string.Join('x', shape)}");
        int changed = Enumerable.Range(0, n).Count(i => actual[i] != baseline[i]);
        Assert.InRange(changed, 1, n / 2);
    }

    [Theory]
    [InlineData(91, 1e-5f)]
    [InlineData(92, 0.005f)]
    public void Ram_matches_reference_bit_for_bit(int seed, float epsilon)
    {
        // bf16 fine-tunes of a base near 1 leave many deltas exactly 0: a mix of untouched, unique and shared entries.
        var (baseline, models) = RandomModels(seed, 6007, 3);
        float[] actual = Run(new Ram(), baseline, models, [6007], global: g => g.Set("epsilon", (double)epsilon));
        AssertBits(MergeKitReference.Ram(baseline, models, epsilon), actual, "ram");
    }

    [Theory]
    [InlineData(93, 0.1f, 0.2f)]
    [InlineData(94, 0.5f, 3f)]
    public void RamPlusTl_matches_reference_bit_for_bit(int seed, float r, float alpha)
    {
        var (baseline, models) = RandomModels(seed, 6007, 3);
        float[] actual = Run(new RamPlusTl(), baseline, models, [6007],
            global: g => g.Set("r", (double)r).Set("alpha", (double)alpha));
        AssertBits(MergeKitReference.Ram(baseline, models, 1e-5f, plus: true, r, alpha), actual, "ramplus_tl");
    }

    [Theory]
    [InlineData(101, 1f)]
    [InlineData(102, 0.5f)]
    public void MagMax_takes_the_largest_magnitude_entry(int seed, float lambda)
    {
        var (baseline, models) = RandomModels(seed, 3333, 4);
        float[] actual = Run(new MagMax(), baseline, models, [3333], global: g => g.Set("lambda", (double)lambda));
        AssertBits(MergeKitReference.MagMax(baseline, models, lambda), actual, "magmax");
    }

    [Fact]
    public void BreadcrumbsPaper_drops_the_bottom_beta_and_top_gamma()
    {
        var (baseline, models) = RandomModels(111, 4001, 2);
        double[] beta = [0.85, 0.5], gamma = [0.01, 0.1];
        float[] weights = [1f, 0.5f];
        float[] actual = Run(new BreadcrumbsPaper(), baseline, models, [4001],
            (m, p) => p.Set("beta", beta[m]).Set("gamma", gamma[m]).Set("weight", (double)weights[m]),
            g => g.Set("lambda", 0.7));
        AssertBits(MergeKitReference.BreadcrumbsPaper(baseline, models, beta, gamma, weights, 0.7f), actual, "breadcrumbs_paper");
    }

    [Fact]
    public void Every_new_method_is_registered_with_mergekit_traits()
    {
        (string Name, BaseModelUse Base, int Min, int Max)[] expected =
        [
            ("della", BaseModelUse.Required, 1, int.MaxValue), ("della_linear", BaseModelUse.Required, 1, int.MaxValue),
            ("sce", BaseModelUse.Required, 1, int.MaxValue), ("nuslerp", BaseModelUse.Optional, 2, 2),
            ("multislerp", BaseModelUse.Optional, 1, int.MaxValue), ("karcher", BaseModelUse.None, 1, int.MaxValue),
            ("nearswap", BaseModelUse.Required, 1, 1), ("arcee_fusion", BaseModelUse.Required, 1, 1),
            ("ram", BaseModelUse.Required, 1, int.MaxValue), ("ramplus_tl", BaseModelUse.Required, 1, int.MaxValue),
            ("magmax", BaseModelUse.Required, 1, int.MaxValue), ("breadcrumbs_paper", BaseModelUse.Required, 1, int.MaxValue),
        ];
        foreach (var (name, use, min, max) in expected)
        {
            IMergeMethod method = MergeMethods.Find(name) ?? throw new Xunit.Sdk.XunitException($"{name} is not registered");
            Assert.Equal((use, min, max), (method.Traits.BaseModel, method.Traits.MinModels, method.Traits.MaxModels));
        }
        var della = MergeMethods.Find("della")!.Parameters.ToDictionary(p => p.Name);
        Assert.Equal(0.15, della["epsilon"].Default);
        Assert.Equal(ParameterScope.PerModel, della["epsilon"].Scope);
        Assert.Equal(true, della["normalize"].Default);
        Assert.Equal(true, della["rescale"].Default);
        Assert.Equal(false, MergeMethods.Find("della_linear")!.Parameters.Single(p => p.Name == "normalize").Default);
        Assert.True(MergeMethods.Find("nearswap")!.Parameters.Single(p => p.Name == "t").Required);
    }
}
