using System.Text;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Moe;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Evaluation;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Moe;

/// <summary>
/// <c>weld moe</c> from Qwen3 models: mergekit's "Qwen3 MoE" output, on random tiny byte-level Qwen3 models (the zoo
/// has none), with hidden gates from the layer-at-a-time pass.
/// </summary>
public sealed class MoeQwen3BuilderTests
{
    private const int Hidden = 16, Heads = 4, KvHeads = 2, HeadDim = 8, Intermediate = 24, Layers = 2, Vocab = 256;

    /// <summary>A random Qwen3 model (q_norm/k_norm, no biases) whose MLPs are drawn from <paramref name="mlpSeed"/>.</summary>
    private static string Qwen3Model(string folder, string name, int mlpSeed)
    {
        var weights = new TensorSet(name);
        var shared = new Random(70);
        var mlp = new Random(mlpSeed);
        void Add(Random random, string tensor, float scale, float offset, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            weights.Set(tensor, shape, Enumerable.Range(0, (int)count).Select(_ => offset + scale * (float)(random.NextDouble() * 2 - 1)).ToArray());
        }

        Add(shared, "model.embed_tokens.weight", 1, 0, Vocab, Hidden);
        Add(shared, "model.norm.weight", 0.2f, 1, Hidden);
        Add(shared, "lm_head.weight", 0.5f, 0, Vocab, Hidden);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(shared, p + "input_layernorm.weight", 0.2f, 1, Hidden);
            Add(shared, p + "post_attention_layernorm.weight", 0.2f, 1, Hidden);
            Add(shared, p + "self_attn.q_proj.weight", 0.4f, 0, Heads * HeadDim, Hidden);
            Add(shared, p + "self_attn.k_proj.weight", 0.4f, 0, KvHeads * HeadDim, Hidden);
            Add(shared, p + "self_attn.v_proj.weight", 0.4f, 0, KvHeads * HeadDim, Hidden);
            Add(shared, p + "self_attn.o_proj.weight", 0.3f, 0, Hidden, Heads * HeadDim);
            Add(shared, p + "self_attn.q_norm.weight", 0.3f, 1, HeadDim);
            Add(shared, p + "self_attn.k_norm.weight", 0.3f, 1, HeadDim);
            Add(mlp, p + "mlp.gate_proj.weight", 0.3f, 0, Intermediate, Hidden);
            Add(mlp, p + "mlp.up_proj.weight", 0.3f, 0, Intermediate, Hidden);
            Add(mlp, p + "mlp.down_proj.weight", 0.3f, 0, Hidden, Intermediate);
        }

        string json = $$"""
            {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": {{Hidden}}, "intermediate_size": {{Intermediate}},
             "num_hidden_layers": {{Layers}}, "num_attention_heads": {{Heads}}, "num_key_value_heads": {{KvHeads}}, "head_dim": {{HeadDim}},
             "vocab_size": {{Vocab}}, "rms_norm_eps": 1e-06, "rope_theta": 1000000, "tie_word_embeddings": false,
             "attention_bias": false, "hidden_act": "silu", "torch_dtype": "bfloat16"}
            """;
        return LlamaModelTests.WriteModelFolder(weights, json, DType.BF16, Path.Combine(folder, name));
    }

    private static float[] Read(ModelFolder folder, string name)
    {
        ModelTensor t = folder.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    [Fact]
    public void Qwen3_models_give_a_qwen3_moe_with_hidden_gates_that_the_evaluator_loads()
    {
        string folder = TestPaths.NewTempDir();
        string baseModel = Qwen3Model(folder, "base", 1), a = Qwen3Model(folder, "a", 2), b = Qwen3Model(folder, "b", 3);
        MoeConfig config = MoeConfig.Parse($"""
            base_model: base
            architecture: qwen
            experts_per_token: 1
            experts:
              - source_model: a
                positive_prompts: ["int x;", "void f(void)"]
              - source_model: b
                positive_prompts: ["import os"]
                negative_prompts: ["int"]
            """, Path.Combine(folder, "moe.yml"));
        string output = Path.Combine(folder, "moe");
        MoeBuildResult result = MoeBuilder.Build(config, output, false, false, seed: 0);
        Assert.Equal(MoeOutputArchitecture.Qwen3Moe, result.Architecture); // "qwen" matches Qwen MoE and Qwen3 MoE; only the latter takes qwen3 models

        using var moe = ModelFolder.Open(output);
        Assert.Equal(("Qwen3MoeForCausalLM", "qwen3_moe"), (moe.Config!.Architecture, moe.Config.ModelType));
        var raw = moe.Config.Raw;
        Assert.Equal((2, 1, 1, true, Intermediate), ((int)raw["num_experts"]!, (int)raw["num_experts_per_tok"]!, (int)raw["decoder_sparse_step"]!,
            (bool)raw["norm_topk_prob"]!, (int)raw["moe_intermediate_size"]!));
        using var expertA = ModelFolder.Open(a);
        using var baseline = ModelFolder.Open(baseModel);
        Assert.Equal(Read(expertA, "model.layers.1.mlp.down_proj.weight"), Read(moe, "model.layers.1.mlp.experts.0.down_proj.weight"));
        Assert.Equal(Read(baseline, "model.layers.0.self_attn.q_norm.weight"), Read(moe, "model.layers.0.self_attn.q_norm.weight"));
        Assert.DoesNotContain(moe.TensorNames, n => n.Contains("shared_expert", StringComparison.Ordinal) || n.EndsWith(".bias", StringComparison.Ordinal)
            || n.Contains(".mlp.gate_proj", StringComparison.Ordinal));
        Assert.Equal(baseline.TensorNames.Count - 6 + 2 * 6 + 2, moe.TensorNames.Count);

        // The routers are the whole-model forward pass's layer inputs (q/k norms included), bit for bit.
        LlamaModel dense = LlamaModel.Load(baseline);
        float[] Mean(IReadOnlyList<string> prompts, int layer)
        {
            var sum = new float[Hidden];
            foreach (string p in prompts)
                System.Numerics.Tensors.TensorPrimitives.Add(sum, dense.LayerInputs(Encoding.UTF8.GetBytes(p).Select(x => (int)x).ToArray(), false)[layer], sum);
            System.Numerics.Tensors.TensorPrimitives.Divide(sum, prompts.Count, sum);
            return sum;
        }

        for (int layer = 0; layer < Layers; layer++)
            for (int e = 0; e < 2; e++)
            {
                float[] expected = Mean(config.Experts[e].PositivePrompts, layer);
                if (config.Experts[e].NegativePrompts.Count > 0)
                    System.Numerics.Tensors.TensorPrimitives.Subtract(expected, Mean(config.Experts[e].NegativePrompts, layer), expected);
                System.Numerics.Tensors.TensorPrimitives.Divide(expected, MathF.Max(System.Numerics.Tensors.TensorPrimitives.Norm(expected), 1e-8f), expected);
                Assert.Equal(expected, result.GateVectors![layer][e]);
            }

        LlamaModel model = LlamaModel.Load(moe);
        Assert.Equal((MoeLayout.Qwen3Moe, 2, 1), (model.Config.MoeLayout, model.Config.ExpertCount, model.Config.ExpertsPerToken));
        var used = new HashSet<int>();
        model.Routing = (_, _, _, chosen) => { lock (used) foreach (int e in chosen) used.Add(e); };
        PerplexityResult r = PerplexityEvaluator.Evaluate(model, ByteTokenizer.Instance.Encode(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("int x; import os\n", 20)))));
        Assert.True(double.IsFinite(r.Perplexity) && r.Perplexity > 1);
        Assert.Equal(2, used.Count);
    }

    [Fact]
    public void Qwen3_models_with_a_shared_expert_or_mixtral_asked_are_refused()
    {
        string folder = TestPaths.NewTempDir();
        Qwen3Model(folder, "base", 1);
        Qwen3Model(folder, "a", 2);
        Qwen3Model(folder, "b", 3);
        string Body(string extra) => $"""
            base_model: base
            gate_mode: random
            {extra}
            experts:
              - source_model: a
              - source_model: b
            """;
        var mixtral = Assert.Throws<WeldException>(() => MoeBuilder.Build(MoeConfig.Parse(Body("architecture: mixtral"), Path.Combine(folder, "moe.yml")), "unused", false, true, 0));
        Assert.Contains("Mixtral: needs llama or mistral input models, not 'qwen3'", mixtral.Message);
        var shared = Assert.Throws<WeldException>(() => MoeBuilder.Build(MoeConfig.Parse(Body("shared_experts: [{source_model: a}]\narchitecture: qwen"), Path.Combine(folder, "moe.yml")), "unused", false, true, 0));
        Assert.Contains("Qwen3 MoE: has no shared experts", shared.Message);
        Assert.Contains("Qwen MoE: needs llama or mistral or qwen2 input models, not 'qwen3'", shared.Message);
    }
}
