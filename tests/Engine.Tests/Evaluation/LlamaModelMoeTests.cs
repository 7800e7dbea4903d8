using System.Text.Json.Nodes;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Mixtral sparse-MoE layers in the forward pass, against a float64 scalar reference of Hugging Face's
/// <c>MixtralSparseMoeBlock</c> (softmax over all router logits, top-k, renormalised over the k).
/// </summary>
public partial class LlamaModelTests
{
    private static (LlamaConfig Config, TensorSet Weights) TinyMoe(int experts, int perToken, int seed, float routerScale = 1.5f)
    {
        (LlamaConfig dense, TensorSet weights) = TinyModel(tied: false);
        var random = new Random(seed);
        void Add(string name, float scale, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            var values = new float[count];
            for (int i = 0; i < values.Length; i++) values[i] = scale * (float)(random.NextDouble() * 2 - 1);
            weights.Set(name, shape, values);
        }

        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.block_sparse_moe.";
            Add(p + "gate.weight", routerScale, experts, Hidden);
            for (int e = 0; e < experts; e++)
            {
                Add($"{p}experts.{e}.w1.weight", 0.3f, Intermediate, Hidden);
                Add($"{p}experts.{e}.w2.weight", 0.3f, Hidden, Intermediate);
                Add($"{p}experts.{e}.w3.weight", 0.3f, Intermediate, Hidden);
            }
        }

        return (dense with { ExpertCount = experts, ExpertsPerToken = perToken }, weights);
    }

    /// <summary>MixtralSparseMoeBlock in float64, written from the transformers definition.</summary>
    private static Func<int, double[], double[]> ReferenceMoe(TensorSet w, int experts, int perToken) => (layer, x) =>
    {
        double[] Linear(string name, double[] input, int outputs)
        {
            float[] values = w.Get(name);
            var y = new double[outputs];
            for (int o = 0; o < outputs; o++)
                for (int i = 0; i < input.Length; i++) y[o] += values[o * input.Length + i] * input[i];
            return y;
        }

        string p = $"model.layers.{layer}.block_sparse_moe.";
        double[] logits = Linear(p + "gate.weight", x, experts);
        double max = logits.Max();
        double[] probabilities = logits.Select(z => Math.Exp(z - max)).ToArray();
        double total = probabilities.Sum();
        probabilities = probabilities.Select(v => v / total).ToArray();
        int[] top = Enumerable.Range(0, experts).OrderByDescending(e => probabilities[e]).ThenBy(e => e).Take(perToken).ToArray();
        double kept = top.Sum(e => probabilities[e]);
        var output = new double[Hidden];
        foreach (int e in top)
        {
            double[] gate = Linear($"{p}experts.{e}.w1.weight", x, Intermediate);
            double[] up = Linear($"{p}experts.{e}.w3.weight", x, Intermediate);
            double[] act = gate.Select((g, n) => g / (1 + Math.Exp(-g)) * up[n]).ToArray();
            double[] down = Linear($"{p}experts.{e}.w2.weight", act, Hidden);
            for (int d = 0; d < Hidden; d++) output[d] += probabilities[e] / kept * down[d];
        }

        return output;
    };

    [Theory]
    [InlineData(4, 2, 21)]
    [InlineData(4, 1, 22)]
    [InlineData(3, 3, 23)]
    [InlineData(5, 2, 24)]
    public void Mixtral_moe_layers_match_a_float64_reference(int experts, int perToken, int seed)
    {
        (LlamaConfig config, TensorSet weights) = TinyMoe(experts, perToken, seed);
        var model = new LlamaModel(config, weights);
        const int windows = 3, length = 9;
        var random = new Random(seed);
        int[] tokens = Enumerable.Range(0, windows * length).Select(_ => random.Next(Vocab)).ToArray();
        var nll = new double[windows];
        var used = new HashSet<int>();
        model.Routing = (_, rows, _, chosen) => { foreach (int e in chosen) lock (used) used.Add(e); };
        model.ScoreWindows(tokens, windows, length, nll);
        Assert.Equal(experts, used.Count); // the routing really spreads over the experts
        for (int w = 0; w < windows; w++)
        {
            double expected = ReferenceNll(weights, false, tokens[(w * length)..((w + 1) * length)], ReferenceMoe(weights, experts, perToken));
            Assert.True(Math.Abs(nll[w] - expected) <= 1e-4 * Math.Abs(expected), $"window {w}: {nll[w]:R} vs reference {expected:R}");
        }
    }

    [Fact]
    public void A_moe_of_identical_experts_scores_like_the_dense_model()
    {
        (LlamaConfig dense, TensorSet weights) = TinyModel(tied: false);
        (LlamaConfig config, TensorSet moe) = TinyMoe(4, 2, 31);
        for (int l = 0; l < Layers; l++)
            for (int e = 0; e < 4; e++)
            {
                string p = $"model.layers.{l}.";
                moe.Set($"{p}block_sparse_moe.experts.{e}.w1.weight", [Intermediate, Hidden], weights.Get(p + "mlp.gate_proj.weight"));
                moe.Set($"{p}block_sparse_moe.experts.{e}.w3.weight", [Intermediate, Hidden], weights.Get(p + "mlp.up_proj.weight"));
                moe.Set($"{p}block_sparse_moe.experts.{e}.w2.weight", [Hidden, Intermediate], weights.Get(p + "mlp.down_proj.weight"));
            }

        int[] tokens = Enumerable.Range(0, 20).Select(i => (i * 7) % Vocab).ToArray();
        var a = new double[2];
        var b = new double[2];
        new LlamaModel(dense, weights).ScoreWindows(tokens, 2, 10, a);
        new LlamaModel(config, moe).ScoreWindows(tokens, 2, 10, b);
        for (int w = 0; w < 2; w++) Assert.True(Math.Abs(a[w] - b[w]) <= 1e-5 * Math.Abs(a[w]), $"{a[w]:R} vs {b[w]:R}");
    }

    [Fact]
    public void Mixtral_config_reads_the_expert_counts_and_other_moe_layouts_are_refused()
    {
        string Json(string extra) => $$"""
            {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 32{{extra}}}
            """;
        LlamaConfig mixtral = LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "mixtral", "num_local_experts": 8""")));
        Assert.Equal((8, 2), (mixtral.ExpertCount, mixtral.ExpertsPerToken)); // transformers' default top-2
        Assert.True(mixtral.IsMoe);
        Assert.False(LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "llama" """))).IsMoe);
        Assert.Throws<InvalidModelFileException>(() => LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "mixtral" """))));
        Assert.Throws<InvalidModelFileException>(() => LlamaConfig.FromModelConfig(ModelConfig.Parse(
            Json(""", "model_type": "mixtral", "num_local_experts": 2, "num_experts_per_tok": 3"""))));
        var deepseek = Assert.Throws<InvalidModelFileException>(() => LlamaConfig.FromModelConfig(ModelConfig.Parse(
            Json(""", "model_type": "deepseek_v2", "n_routed_experts": 4"""))));
        Assert.Contains("Mixtral", deepseek.Message);
    }

    [Fact]
    public void Layer_inputs_are_the_residual_stream_before_each_layer()
    {
        (LlamaConfig config, TensorSet weights) = TinyModel(tied: false);
        var model = new LlamaModel(config, weights);
        int[] tokens = [3, 9, 27, 5];
        float[][] last = model.LayerInputs(tokens, averageOverSequence: false);
        float[][] mean = model.LayerInputs(tokens, averageOverSequence: true);
        Assert.Equal(Layers, last.Length);
        float[] embedding = weights.Get("model.embed_tokens.weight");
        for (int d = 0; d < Hidden; d++)
        {
            Assert.Equal(embedding[5 * Hidden + d], last[0][d]);
            float average = tokens.Sum(t => embedding[t * Hidden + d]) / tokens.Length;
            Assert.Equal(average, mean[0][d], 1e-5f);
        }

        Assert.False(last[1].SequenceEqual(last[0])); // layer 1's input is layer 0's output
    }
}
