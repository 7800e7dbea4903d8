using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Qwen3 attention (q_norm/k_norm: RMSNorm of every query and key head before RoPE) and Qwen3-MoE sparse layers
/// (softmax over all experts, top-k, renormalised only with norm_topk_prob, no shared expert) against the float64
/// reference.
/// </summary>
public partial class LlamaModelTests
{
    private static void AddHeadNorms(TensorSet weights, int seed)
    {
        var random = new Random(seed);
        for (int l = 0; l < Layers; l++)
            foreach (string norm in (string[])["q_norm", "k_norm"])
                weights.Set($"model.layers.{l}.self_attn.{norm}.weight", [HeadDim],
                    Enumerable.Range(0, HeadDim).Select(_ => 1 + 0.5f * (float)(random.NextDouble() * 2 - 1)).ToArray());
    }

    [Fact]
    public void Qwen3_head_norms_match_a_float64_reference()
    {
        (LlamaConfig config, TensorSet weights) = TinyModel(tied: false);
        AddHeadNorms(weights, 51);
        var model = new LlamaModel(config, weights);
        int[] tokens = Enumerable.Range(0, 22).Select(i => (i * 13 + 5) % Vocab).ToArray();
        var nll = new double[2];
        model.ScoreWindows(tokens, 2, 11, nll);
        var without = new double[2];
        (LlamaConfig plainConfig, TensorSet plain) = TinyModel(tied: false);
        new LlamaModel(plainConfig, plain).ScoreWindows(tokens, 2, 11, without);
        for (int w = 0; w < 2; w++)
        {
            double expected = ReferenceNll(weights, false, tokens[(w * 11)..((w + 1) * 11)]);
            Assert.True(Math.Abs(nll[w] - expected) <= 1e-4 * Math.Abs(expected), $"window {w}: {nll[w]:R} vs reference {expected:R}");
            Assert.True(Math.Abs(nll[w] - without[w]) > 1e-3, "the norms change the result"); // the test can tell them apart
        }
    }

    [Theory]
    [InlineData(4, 2, false, 61)]
    [InlineData(4, 2, true, 62)]
    [InlineData(3, 3, false, 63)]
    public void Qwen3_moe_layers_match_a_float64_reference(int experts, int perToken, bool normTopK, int seed)
    {
        string json = $$"""
            {"model_type": "qwen3_moe", "hidden_size": {{Hidden}}, "intermediate_size": {{Intermediate}}, "num_hidden_layers": {{Layers}},
             "num_attention_heads": {{Heads}}, "num_key_value_heads": {{KvHeads}}, "head_dim": {{HeadDim}},
             "vocab_size": {{Vocab}}, "rms_norm_eps": {{Eps}}, "rope_theta": {{Theta}}, "tie_word_embeddings": false,
             "num_experts": {{experts}}, "num_experts_per_tok": {{perToken}}, "moe_intermediate_size": {{ExpertWidth}},
             "norm_topk_prob": {{(normTopK ? "true" : "false")}}}
            """;
        LlamaConfig config = LlamaConfig.FromModelConfig(ModelConfig.Parse(json));
        Assert.Equal((MoeLayout.Qwen3Moe, 0, ExpertWidth), (config.MoeLayout, config.SharedExpertIntermediateSize, config.ExpertWidth));
        (_, TensorSet weights) = TinyModel(tied: false);
        AddHeadNorms(weights, seed);
        var random = new Random(seed);
        void Add(string name, float scale, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            weights.Set(name, shape, Enumerable.Range(0, (int)count).Select(_ => scale * (float)(random.NextDouble() * 2 - 1)).ToArray());
        }

        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.mlp.";
            Add(p + "gate.weight", 1.5f, experts, Hidden);
            for (int e = 0; e < experts; e++)
            {
                Add($"{p}experts.{e}.gate_proj.weight", 0.3f, ExpertWidth, Hidden);
                Add($"{p}experts.{e}.up_proj.weight", 0.3f, ExpertWidth, Hidden);
                Add($"{p}experts.{e}.down_proj.weight", 0.3f, Hidden, ExpertWidth);
            }
        }

        var model = new LlamaModel(config, weights);
        int[] tokens = Enumerable.Range(0, 27).Select(_ => random.Next(Vocab)).ToArray();
        var nll = new double[3];
        var used = new HashSet<int>();
        model.Routing = (_, _, _, chosen) => { lock (used) foreach (int e in chosen) used.Add(e); };
        model.ScoreWindows(tokens, 3, 9, nll);
        Assert.Equal(experts, used.Count);
        // The Qwen2-MoE reference without a shared expert is Qwen3MoeSparseMoeBlock.
        Func<int, double[], double[]> reference = ReferenceQwen2Moe(weights, config);
        for (int w = 0; w < 3; w++)
        {
            double expected = ReferenceNll(weights, false, tokens[(w * 9)..((w + 1) * 9)], reference);
            Assert.True(Math.Abs(nll[w] - expected) <= 1e-4 * Math.Abs(expected), $"window {w}: {nll[w]:R} vs reference {expected:R}");
        }
    }
}
