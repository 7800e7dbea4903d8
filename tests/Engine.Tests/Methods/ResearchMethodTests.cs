using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Methods;
using Weld.Engine.Tests.Merging;
using Weld.Kernels;
using Weld.Tests;
using Xunit;
using static Weld.Engine.Tests.Methods.MethodHarness;

namespace Weld.Engine.Tests.Methods;

/// <summary>consensus (TALL masks) and divergence_weights against plain scalar references of their equations.</summary>
public class ResearchMethodTests
{
    /// <summary>Consensus merging written out per element, one model at a time.</summary>
    private static float[] ConsensusReference(float[] baseline, float[][] models, float[] maskLambda, double k, float lambda)
    {
        int n = baseline.Length;
        var result = new float[n];
        for (int i = 0; i < n; i++)
        {
            var tau = new float[models.Length];
            float mtl = 0f;
            for (int t = 0; t < models.Length; t++)
            {
                tau[t] = models[t][i] - baseline[i];
                mtl += tau[t];
            }
            int votes = 0;
            for (int t = 0; t < models.Length; t++)
                if (Math.Abs(tau[t]) >= maskLambda[t] * Math.Abs(mtl - tau[t])) votes++;
            float kept = votes >= k ? mtl : 0f;
            if (lambda != 1f) kept *= lambda;
            result[i] = baseline[i] + kept;
        }
        return result;
    }

    [Theory]
    [InlineData(1, 2.0, 1f)]
    [InlineData(2, 3.0, 0.8f)]
    [InlineData(3, 1.0, 1.5f)]
    public void Consensus_keeps_the_task_sum_where_at_least_k_masks_agree(int seed, double k, float lambda)
    {
        var (baseline, models) = RandomModels(seed, 5001, 4);
        float[] maskLambda = [0.4f, 0.2f, 0.6f, 0.3f];
        float[] actual = Run(new Consensus(), baseline, models, [5001],
            (m, p) => p.Set("mask_lambda", (double)maskLambda[m]), g => g.Set("k", k).Set("lambda", (double)lambda));
        float[] expected = ConsensusReference(baseline, models, maskLambda, k, lambda);
        AssertBits(expected, actual, "consensus");
        // The masks must actually bite: some elements keep the base, some take the sum.
        int kept = 0;
        for (int i = 0; i < expected.Length; i++) if (expected[i] != baseline[i]) kept++;
        Assert.InRange(kept, 1, expected.Length - 1);
    }

    [Fact]
    public void Consensus_example_equals_the_reference_rounded_to_bf16()
    {
        const string probe = "model.layers.1.self_attn.o_proj.weight";
        string path = Path.Combine(TestPaths.RepoRoot, "examples", "consensus.yml");
        string text = File.ReadAllText(path).Replace(": models/", ": " + Path.Combine(TestPaths.RepoRoot, "examples", "models") + "/", StringComparison.Ordinal);
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(RecipeParser.Parse(text, path), new MergeOptions { OutputPath = output });
        string models = Path.Combine(TestPaths.RepoRoot, "examples", "models");
        float[] baseline = RecipeHarness.Read(Path.Combine(models, "lm-base"), probe);
        float[][] tuned = new[] { "lm-ft-prose", "lm-ft-c", "lm-ft-python", "lm-ft-markup" }
            .Select(m => RecipeHarness.Read(Path.Combine(models, m), probe)).ToArray();
        float[] expected = ConsensusReference(baseline, tuned, [0.4f, 0.4f, 0.4f, 0.4f], 2, 0.5f)
            .Select(x => FloatConversions.Bf16ToSingle(FloatConversions.SingleToBf16(x))).ToArray();
        AssertBits(expected, RecipeHarness.Read(output, probe), "consensus example");
    }

    [Fact]
    public void Consensus_with_k_zero_is_task_arithmetic()
    {
        var (baseline, models) = RandomModels(9, 777, 3);
        float[] actual = Run(new Consensus(), baseline, models, [777], global: g => g.Set("k", 0.0));
        var expected = new float[777];
        for (int i = 0; i < 777; i++)
        {
            float sum = 0f;
            foreach (float[] m in models) sum += m[i] - baseline[i];
            expected[i] = baseline[i] + sum;
        }
        AssertBits(expected, actual, "consensus k=0");
    }

    /// <summary>The divergence weights: softmax of −cos(τ_k, τ̄)/T, everything in double; then Σ w_k τ_k in float.</summary>
    private static float[] DivergenceReference(float[] baseline, float[][] models, double temperature, float lambda, out double[] weights)
    {
        int n = baseline.Length, count = models.Length;
        var tau = new float[count][];
        for (int k = 0; k < count; k++)
        {
            tau[k] = new float[n];
            for (int i = 0; i < n; i++) tau[k][i] = models[k][i] - baseline[i];
        }
        var mean = new float[n];
        float share = 1f / count;
        for (int i = 0; i < n; i++)
        {
            float acc = 0f;
            for (int k = 0; k < count; k++) acc += share * tau[k][i];
            mean[i] = acc;
        }
        var exp = new double[count];
        double total = 0;
        for (int k = 0; k < count; k++)
        {
            double dot = 0, a = 0, b = 0;
            for (int i = 0; i < n; i++)
            {
                dot += (double)tau[k][i] * mean[i];
                a += (double)tau[k][i] * tau[k][i];
                b += (double)mean[i] * mean[i];
            }
            double cosine = dot / Math.Sqrt(a) / Math.Sqrt(b);
            exp[k] = Math.Exp(-cosine / temperature);
            total += exp[k];
        }
        weights = exp.Select(e => e / total).ToArray();
        var result = new float[n];
        for (int i = 0; i < n; i++)
        {
            float acc = 0f;
            for (int k = 0; k < count; k++) acc += (float)weights[k] * tau[k][i];
            if (lambda != 1f) acc *= lambda;
            result[i] = baseline[i] + acc;
        }
        return result;
    }

    [Theory]
    [InlineData(5, 1.0, 1f)]
    [InlineData(6, 0.1, 2f)]
    public void Divergence_weights_favour_the_task_vector_least_like_the_mean(int seed, double temperature, float lambda)
    {
        var (baseline, models) = RandomModels(seed, 3001, 3);
        // Models 0 and 1 share most of their change; model 2 goes its own way, so it is least like the mean.
        for (int i = 0; i < 3001; i++) models[1][i] = Bf16(0.5f * (models[0][i] + models[1][i]));
        float[] actual = Run(new DivergenceWeights(), baseline, models, [3001],
            global: g => g.Set("temperature", temperature).Set("lambda", (double)lambda));
        float[] expected = DivergenceReference(baseline, models, temperature, lambda, out double[] weights);
        // Float64 dot products may be summed in another order by the kernels: allow a few ulps in the weights' effect.
        AssertClose(expected, actual, 1e-6, "divergence_weights");
        Assert.True(weights[2] > weights[0] && weights[2] > weights[1], string.Join(", ", weights));
    }
}
