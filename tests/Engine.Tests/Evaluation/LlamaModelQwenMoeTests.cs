using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Qwen2-MoE sparse layers in the forward pass, against a float64 scalar reference of Hugging Face's
/// <c>Qwen2MoeSparseMoeBlock</c>: softmax over all router logits, top-k, renormalised only with norm_topk_prob, plus
/// the shared expert scaled by sigmoid(shared_expert_gate·x); dense layers where decoder_sparse_step or
/// mlp_only_layers say so; q/k/v biases.
/// </summary>
public partial class LlamaModelTests
{
    private const int ExpertWidth = 10, SharedWidth = 14;

    private static (LlamaConfig Config, TensorSet Weights) TinyQwen2Moe(int experts, int perToken, bool normTopK, int sparseStep,
        int[] mlpOnly, int seed)
    {
        string json = $$"""
            {"model_type": "qwen2_moe", "architectures": ["Qwen2MoeForCausalLM"],
             "hidden_size": {{Hidden}}, "intermediate_size": {{Intermediate}}, "num_hidden_layers": {{Layers}},
             "num_attention_heads": {{Heads}}, "num_key_value_heads": {{KvHeads}}, "head_dim": {{HeadDim}},
             "vocab_size": {{Vocab}}, "rms_norm_eps": {{Eps}}, "rope_theta": {{Theta}}, "tie_word_embeddings": false,
             "num_experts": {{experts}}, "num_experts_per_tok": {{perToken}}, "moe_intermediate_size": {{ExpertWidth}},
             "shared_expert_intermediate_size": {{SharedWidth}}, "norm_topk_prob": {{(normTopK ? "true" : "false")}},
             "decoder_sparse_step": {{sparseStep}}, "mlp_only_layers": [{{string.Join(", ", mlpOnly)}}]}
            """;
        LlamaConfig config = LlamaConfig.FromModelConfig(ModelConfig.Parse(json));
        (_, TensorSet weights) = TinyModel(tied: false); // attention, norms, embeddings and the dense MLPs
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
            string a = $"model.layers.{l}.self_attn.";
            Add(a + "q_proj.bias", 0.3f, Heads * HeadDim);
            Add(a + "k_proj.bias", 0.3f, KvHeads * HeadDim);
            Add(a + "v_proj.bias", 0.3f, KvHeads * HeadDim);
            if (!config.IsSparseLayer(l)) continue;
            string p = $"model.layers.{l}.mlp.";
            Add(p + "gate.weight", 1.5f, experts, Hidden);
            for (int e = 0; e < experts; e++)
            {
                Add($"{p}experts.{e}.gate_proj.weight", 0.3f, ExpertWidth, Hidden);
                Add($"{p}experts.{e}.up_proj.weight", 0.3f, ExpertWidth, Hidden);
                Add($"{p}experts.{e}.down_proj.weight", 0.3f, Hidden, ExpertWidth);
            }

            Add(p + "shared_expert.gate_proj.weight", 0.3f, SharedWidth, Hidden);
            Add(p + "shared_expert.up_proj.weight", 0.3f, SharedWidth, Hidden);
            Add(p + "shared_expert.down_proj.weight", 0.3f, Hidden, SharedWidth);
            Add(p + "shared_expert_gate.weight", 0.8f, 1, Hidden);
        }

        return (config, weights);
    }

    /// <summary>Qwen2MoeSparseMoeBlock (and Qwen2MoeMLP on dense layers) in float64, written from the transformers definition.</summary>
    private static Func<int, double[], double[]> ReferenceQwen2Moe(TensorSet w, LlamaConfig config) => (layer, x) =>
    {
        double[] Linear(string name, double[] input, int outputs)
        {
            float[] values = w.Get(name);
            var y = new double[outputs];
            for (int o = 0; o < outputs; o++)
                for (int i = 0; i < input.Length; i++) y[o] += values[o * input.Length + i] * input[i];
            return y;
        }

        double[] SwiGlu(string prefix, double[] input, int width)
        {
            double[] gate = Linear(prefix + "gate_proj.weight", input, width);
            double[] up = Linear(prefix + "up_proj.weight", input, width);
            return Linear(prefix + "down_proj.weight", gate.Select((g, n) => g / (1 + Math.Exp(-g)) * up[n]).ToArray(), Hidden);
        }

        string p = $"model.layers.{layer}.mlp.";
        bool sparse = !config.MlpOnlyLayers!.Contains(layer) && config.ExpertCount > 0 && (layer + 1) % config.DecoderSparseStep == 0;
        if (!sparse) return SwiGlu(p, x, Intermediate);

        int experts = config.ExpertCount;
        double[] logits = Linear(p + "gate.weight", x, experts);
        double max = logits.Max();
        double[] probabilities = logits.Select(z => Math.Exp(z - max)).ToArray();
        double total = probabilities.Sum();
        probabilities = probabilities.Select(v => v / total).ToArray();
        int[] top = Enumerable.Range(0, experts).OrderByDescending(e => probabilities[e]).ThenBy(e => e).Take(config.ExpertsPerToken).ToArray();
        double kept = config.NormalizeTopK ? top.Sum(e => probabilities[e]) : 1;
        var output = new double[Hidden];
        foreach (int e in top)
        {
            double[] down = SwiGlu($"{p}experts.{e}.", x, ExpertWidth);
            for (int d = 0; d < Hidden; d++) output[d] += probabilities[e] / kept * down[d];
        }

        if (config.SharedExpertIntermediateSize == 0) return output; // Qwen3-MoE
        double[] shared = SwiGlu(p + "shared_expert.", x, SharedWidth);
        double scale = 1 / (1 + Math.Exp(-Linear(p + "shared_expert_gate.weight", x, 1)[0]));
        for (int d = 0; d < Hidden; d++) output[d] += scale * shared[d];
        return output;
    };

    [Theory]
    [InlineData(4, 2, false, 1, new int[0], 41)]
    [InlineData(4, 2, true, 1, new int[0], 42)]
    [InlineData(5, 3, false, 1, new[] { 0 }, 43)]
    [InlineData(3, 1, true, 2, new int[0], 44)]
    [InlineData(4, 4, false, 1, new int[0], 45)]
    public void Qwen2_moe_layers_match_a_float64_reference(int experts, int perToken, bool normTopK, int sparseStep, int[] mlpOnly, int seed)
    {
        (LlamaConfig config, TensorSet weights) = TinyQwen2Moe(experts, perToken, normTopK, sparseStep, mlpOnly, seed);
        Assert.Equal((MoeLayout.Qwen2Moe, ExpertWidth, SharedWidth, normTopK), (config.MoeLayout, config.ExpertWidth, config.SharedExpertIntermediateSize, config.NormalizeTopK));
        var model = new LlamaModel(config, weights);
        const int windows = 3, length = 9;
        var random = new Random(seed);
        int[] tokens = Enumerable.Range(0, windows * length).Select(_ => random.Next(Vocab)).ToArray();
        var nll = new double[windows];
        var used = new HashSet<(int Layer, int Expert)>();
        model.Routing = (layer, _, _, chosen) => { lock (used) foreach (int e in chosen) used.Add((layer, e)); };
        model.ScoreWindows(tokens, windows, length, nll);
        int sparseLayers = Enumerable.Range(0, Layers).Count(config.IsSparseLayer);
        Assert.Equal(sparseLayers, used.Select(u => u.Layer).Distinct().Count()); // dense layers route nothing
        Assert.Equal(sparseLayers * experts, used.Count); // the routing really spreads over the experts
        for (int w = 0; w < windows; w++)
        {
            double expected = ReferenceNll(weights, false, tokens[(w * length)..((w + 1) * length)], ReferenceQwen2Moe(weights, config));
            Assert.True(Math.Abs(nll[w] - expected) <= 1e-4 * Math.Abs(expected), $"window {w}: {nll[w]:R} vs reference {expected:R}");
        }
    }

    [Fact]
    public void Norm_topk_prob_changes_the_output_unless_top_k_is_all_experts()
    {
        // Same weights, norm_topk_prob off and on: with k < E the routing weights differ, so the NLL must too
        // (a forward pass that ignored the flag would pass the reference test of only one setting).
        double Nll(bool norm, int perToken)
        {
            (LlamaConfig config, TensorSet weights) = TinyQwen2Moe(4, perToken, norm, 1, [], 46);
            var nll = new double[1];
            new LlamaModel(config, weights).ScoreWindows(Enumerable.Range(0, 9).Select(i => (i * 5) % Vocab).ToArray(), 1, 9, nll);
            return nll[0];
        }

        Assert.NotEqual(Nll(false, 2), Nll(true, 2));
        Assert.Equal(Nll(false, 4), Nll(true, 4), 1e-4); // k = E: the weights already sum to 1
    }

    [Fact]
    public void Qwen_moe_config_defaults()
    {
        string Json(string extra) => $$"""
            {"hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 32{{extra}}}
            """;
        LlamaConfig qwen = LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "qwen2_moe", "num_experts": 8""")));
        Assert.Equal((8, 4, 1408, 5632, false, 1), (qwen.ExpertCount, qwen.ExpertsPerToken, qwen.ExpertWidth, qwen.SharedExpertIntermediateSize, qwen.NormalizeTopK, qwen.DecoderSparseStep));
        Assert.True(qwen.IsSparseLayer(0) && qwen.IsSparseLayer(1));
        LlamaConfig stepped = LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "qwen2_moe", "num_experts": 8, "decoder_sparse_step": 2""")));
        Assert.Equal((false, true), (stepped.IsSparseLayer(0), stepped.IsSparseLayer(1)));
        Assert.Throws<InvalidModelFileException>(() => LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "qwen2_moe" """))));
        Assert.Throws<InvalidModelFileException>(() => LlamaConfig.FromModelConfig(ModelConfig.Parse(
            Json(""", "model_type": "qwen2_moe", "num_experts": 2, "mlp_only_layers": ["a"]"""))));
        LlamaConfig qwen3 = LlamaConfig.FromModelConfig(ModelConfig.Parse(Json(""", "model_type": "qwen3_moe", "num_experts": 128""")));
        Assert.Equal((MoeLayout.Qwen3Moe, 128, 8, 768, 0, false), (qwen3.MoeLayout, qwen3.ExpertCount, qwen3.ExpertsPerToken, qwen3.ExpertWidth,
            qwen3.SharedExpertIntermediateSize, qwen3.NormalizeTopK));
    }
}
