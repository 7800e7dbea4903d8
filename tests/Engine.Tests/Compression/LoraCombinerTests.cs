using System.Text.Json.Nodes;
using Weld.Engine.Compression;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Compression;

/// <summary>
/// PEFT's svd combination on the zoo's lm-lora-python (r 8, alpha 16: scale 2) and a rank-4 adapter extracted from
/// lm-ft-c's MLP (scale 1), against dense ΔW sums and ExactSvd.
/// </summary>
public sealed class LoraCombinerTests
{
    private static readonly Lazy<string> s_mlpAdapter = new(() =>
    {
        string path = Path.Combine(TestPaths.NewSharedTempDir(), "ft-c-mlp"); // shared by every test of the class
        LoraExtractor.Extract(TestPaths.Model("lm-ft-c"), TestPaths.Model("lm-base"), new LoraExtractionOptions(4, Include: "mlp"), path);
        return path;
    });

    private static string[] Adapters => [TestPaths.Model("lm-lora-python"), s_mlpAdapter.Value];

    private static readonly double[] s_weights = [0.7, -1.3];

    /// <summary>Σ_i c_i·B_i·A_i in double, straight from the factors, with c_i = w_i·s_i² (PEFT) or w_i·s_i.</summary>
    private static double[] DenseSum(string module, bool scaleOnce, out int rows, out int columns)
    {
        double[]? sum = null;
        rows = columns = 0;
        for (int i = 0; i < Adapters.Length; i++)
        {
            if (!LoraApplier.ReadAdapter(Adapters[i]).TryGetValue(module, out var m)) continue;
            (rows, columns) = (m.Rows, m.Columns);
            sum ??= new double[rows * columns];
            double c = s_weights[i] * m.Scale * (scaleOnce ? 1 : m.Scale);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < columns; j++)
                {
                    double dot = 0;
                    for (int k = 0; k < m.Rank; k++) dot += (double)m.B[r * m.Rank + k] * m.A[k * columns + j];
                    sum[r * columns + j] += c * dot;
                }
        }
        return sum!;
    }

    private static double[] Product(LoraApplier.LoraModule m)
    {
        var product = new double[m.Rows * m.Columns];
        for (int r = 0; r < m.Rows; r++)
            for (int j = 0; j < m.Columns; j++)
            {
                double dot = 0;
                for (int k = 0; k < m.Rank; k++) dot += (double)m.B[r * m.Rank + k] * m.A[k * m.Columns + j];
                product[r * m.Columns + j] = m.Scale * dot;
            }
        return product;
    }

    private static IReadOnlyDictionary<string, LoraApplier.LoraModule> Combine(LoraCombineOptions options, out string path)
    {
        path = Path.Combine(TestPaths.NewTempDir(), "combined");
        LoraCombiner.CombineSvd(Adapters, options, path);
        return LoraApplier.ReadAdapter(path);
    }

    private static void AssertClose(double[] expected, double[] actual, double relativeTolerance, string what)
    {
        double scale = expected.Max(Math.Abs);
        Assert.True(scale > 0, what);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relativeTolerance * scale, $"{what}[{i}]: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Combined_delta_is_the_best_rank_r_approximation_of_the_weighted_sum()
    {
        const int rank = 6;
        var combined = Combine(new LoraCombineOptions(s_weights, rank), out _);
        Assert.Equal(28, combined.Count); // the union: python's 28 modules include ft-c's 12 MLP modules
        foreach (string module in new[] { "model.layers.0.mlp.down_proj", "model.layers.3.mlp.up_proj", "model.layers.2.self_attn.q_proj" })
        {
            double[] sum = DenseSum(module, scaleOnce: false, out int rows, out int columns);
            TruncatedSvd best = ExactSvd.Compute(sum.Select(x => (float)x).ToArray(), rows, columns, rank);
            var bestApproximation = new float[rows * columns];
            best.Reconstruct(bestApproximation);
            LoraApplier.LoraModule m = combined[module];
            Assert.Equal((rows, columns, rank, 1f), (m.Rows, m.Columns, m.Rank, m.Scale));
            AssertClose(bestApproximation.Select(x => (double)x).ToArray(), Product(m), 1e-4, module);
        }
    }

    [Fact]
    public void A_rank_at_least_the_sum_of_ranks_reproduces_the_weighted_sum()
    {
        var combined = Combine(new LoraCombineOptions(s_weights, Rank: 12), out _);
        foreach (string module in new[] { "model.layers.1.mlp.gate_proj", "model.layers.0.self_attn.v_proj" })
            AssertClose(DenseSum(module, false, out _, out _), Product(combined[module]), 1e-5, module);

        var once = Combine(new LoraCombineOptions(s_weights, Rank: 12, ScaleOnce: true), out _);
        AssertClose(DenseSum("model.layers.1.mlp.gate_proj", true, out _, out _), Product(once["model.layers.1.mlp.gate_proj"]), 1e-5, "scale once");
    }

    [Fact]
    public void Config_has_r_and_alpha_equal_to_the_new_rank_and_the_union_of_targets()
    {
        Combine(new LoraCombineOptions(s_weights), out string path);
        JsonObject config = JsonNode.Parse(File.ReadAllText(Path.Combine(path, PeftLoraNames.ConfigFileName)))!.AsObject();
        Assert.Equal(8, config["r"]!.GetValue<int>()); // PEFT's default: the largest r (8 and 4)
        Assert.Equal(8, config["lora_alpha"]!.GetValue<int>());
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
            config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal("CAUSAL_LM", config["task_type"]!.GetValue<string>());
    }

    [Fact]
    public void Clamp_uses_torch_quantile_of_both_factors()
    {
        // Joined and sorted: −4, 1, 2, 3, 10.
        float[] a = [-4, 1, 2], b = [3, 10];
        LoraCombiner.Clamp(a, b, 0.75); // position 3 → 3
        Assert.Equal([-3f, 1, 2], a);
        Assert.Equal([3f, 3], b);
        a = [-4, 1, 2];
        b = [3, 10];
        LoraCombiner.Clamp(a, b, 0.6); // position 2.4 → 2 + 0.4·(3 − 2)
        Assert.Equal([-2.4f, 1, 2], a);
        Assert.Equal([2.4f, 2.4f], b);
    }

    [Fact]
    public void Clamped_factors_stay_within_the_quantile()
    {
        var combined = Combine(new LoraCombineOptions(s_weights, Rank: 6, Clamp: 0.9), out _);
        var unclamped = Combine(new LoraCombineOptions(s_weights, Rank: 6), out _);
        LoraApplier.LoraModule m = combined["model.layers.0.mlp.down_proj"], u = unclamped["model.layers.0.mlp.down_proj"];
        var all = u.B.Concat(u.A).Order().ToArray();
        double position = 0.9 * (all.Length - 1);
        int lo = (int)position;
        float high = (float)(all[lo] + (position - lo) * (all[lo + 1] - all[lo]));
        for (int i = 0; i < u.A.Length; i++) Assert.Equal(Math.Clamp(u.A[i], -high, high), m.A[i]);
        for (int i = 0; i < u.B.Length; i++) Assert.Equal(Math.Clamp(u.B[i], -high, high), m.B[i]);
    }

    [Fact]
    public void Bad_options_throw_weld_exceptions_that_say_what_is_wrong()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "x");
        var e = Assert.Throws<WeldException>(() => LoraCombiner.CombineSvd(Adapters, new LoraCombineOptions([1.0]), output));
        Assert.Contains("1 weight(s) for 2 adapter(s)", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<WeldException>(() => LoraCombiner.CombineSvd(Adapters, new LoraCombineOptions(s_weights, Clamp: 1.5), output));
        Assert.Contains("clamp", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<WeldException>(() => LoraCombiner.CombineSvd(Adapters, new LoraCombineOptions(s_weights, Rank: 0), output));
        Assert.Contains("rank 0", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(output));
    }
}
