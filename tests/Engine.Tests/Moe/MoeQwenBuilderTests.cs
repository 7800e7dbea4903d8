using System.Numerics.Tensors;
using System.Text;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Moe;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Moe;

/// <summary>
/// <c>weld moe</c> with a shared expert: mergekit-moe's output-architecture choice and its "Qwen MoE" (Qwen2-MoE)
/// layout on the zoo, loaded and scored by the evaluator.
/// </summary>
public sealed class MoeQwenBuilderTests
{
    private static string Q(string path) => "'" + path.Replace("'", "''") + "'";

    private static MoeConfig Config(string body) => MoeConfig.Parse(body, Path.Combine(TestPaths.NewTempDir(), "moe.yml"));

    private static string WithShared(string gateMode, string extra = "", string sharedPrompts = "positive_prompts: [\"The licence text\\n\"]") => $"""
        base_model: {Q(TestPaths.Model("lm-base"))}
        gate_mode: {gateMode}
        {extra}
        experts:
          - source_model: {Q(TestPaths.Model("lm-ft-c"))}
            positive_prompts: ["#include <stdio.h>\nint main(void)"]
          - source_model: {Q(TestPaths.Model("lm-ft-python"))}
            positive_prompts: ["import os\n"]
        shared_experts:
          - source_model: {Q(TestPaths.Model("lm-ft-prose"))}
            {sharedPrompts}
            residual_scale: 0.5
        """;

    private static float[] Read(ModelFolder folder, string name)
    {
        ModelTensor t = folder.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    [Fact]
    public void One_shared_expert_with_prompts_writes_qwen2_moe_that_the_evaluator_loads()
    {
        MoeConfig config = Config(WithShared("hidden", "dtype: float32"));
        string output = Path.Combine(TestPaths.NewTempDir(), "moe");
        MoeBuildResult result = MoeBuilder.Build(config, output, false, false, seed: 0);
        Assert.Equal(MoeOutputArchitecture.Qwen2Moe, result.Architecture);
        using var moe = ModelFolder.Open(output);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var c = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        using var prose = ModelFolder.Open(TestPaths.Model("lm-ft-prose"));

        // config.json as mergekit's Qwen MoE writes it.
        Assert.Equal("Qwen2MoeForCausalLM", moe.Config!.Architecture);
        Assert.Equal("qwen2_moe", moe.Config.ModelType);
        var raw = moe.Config.Raw;
        Assert.Equal((2, 2, 1, true, 384, 384), ((int)raw["num_experts"]!, (int)raw["num_experts_per_tok"]!, (int)raw["decoder_sparse_step"]!,
            (bool)raw["norm_topk_prob"]!, (int)raw["moe_intermediate_size"]!, (int)raw["shared_expert_intermediate_size"]!));
        Assert.False((bool)raw["use_sliding_window"]!);

        // Tensors: experts from the fine-tunes, the shared expert from its model (down_proj × residual_scale), the
        // rest from the base, zero q/k/v biases, a router and a shared-expert gate per layer.
        Assert.DoesNotContain(moe.TensorNames, n => n.Contains("block_sparse_moe", StringComparison.Ordinal));
        Assert.Equal(baseline.TensorNames.Count - 12 + 2 * 12 + 12 + 4 * (2 + 3), moe.TensorNames.Count);
        Assert.Equal(Read(c, "model.layers.2.mlp.gate_proj.weight"), Read(moe, "model.layers.2.mlp.experts.0.gate_proj.weight"));
        Assert.Equal(Read(prose, "model.layers.1.mlp.up_proj.weight"), Read(moe, "model.layers.1.mlp.shared_expert.up_proj.weight"));
        float[] down = Read(prose, "model.layers.3.mlp.down_proj.weight");
        Assert.Equal(down.Select(v => (float)(v * 0.5)).ToArray(), Read(moe, "model.layers.3.mlp.shared_expert.down_proj.weight"));
        Assert.Equal(Read(baseline, "model.layers.0.self_attn.o_proj.weight"), Read(moe, "model.layers.0.self_attn.o_proj.weight"));
        Assert.All(Read(moe, "model.layers.0.self_attn.k_proj.bias"), v => Assert.Equal(0f, v));
        Assert.Equal([64L], moe.GetTensor("model.layers.0.self_attn.k_proj.bias").Shape);
        Assert.Equal([128L], moe.GetTensor("model.layers.0.self_attn.q_proj.bias").Shape);
        Assert.Equal([2L, 128L], moe.GetTensor("model.layers.3.mlp.gate.weight").Shape);
        Assert.Equal([1L, 128L], moe.GetTensor("model.layers.3.mlp.shared_expert_gate.weight").Shape);

        // Gates: the routed experts' rows are the same vectors a Mixtral build of the same experts computes, and the
        // shared gate is the shared expert's unit-normed prompt mean.
        MoeBuildResult mixtral = MoeBuilder.Build(Config(WithShared("hidden", "dtype: float32").Split("shared_experts:")[0]),
            Path.Combine(TestPaths.NewTempDir(), "mixtral"), false, false, seed: 0);
        LlamaModel dense = LlamaModel.Load(baseline);
        for (int layer = 0; layer < 4; layer++)
        {
            Assert.Equal(mixtral.GateVectors![layer][0], result.GateVectors![layer][0]);
            Assert.Equal(mixtral.GateVectors[layer][1], result.GateVectors[layer][1]);
            float[] expected = dense.LayerInputs(Encoding.UTF8.GetBytes("The licence text\n").Select(b => (int)b).ToArray(), false)[layer];
            TensorPrimitives.Divide(expected, TensorPrimitives.Norm(expected), expected);
            Assert.Equal(expected, result.GateVectors[layer][2]);
            Assert.Equal(expected, Read(moe, $"model.layers.{layer}.mlp.shared_expert_gate.weight"));
            Assert.Equal(result.GateVectors[layer][0].Concat(result.GateVectors[layer][1]), Read(moe, $"model.layers.{layer}.mlp.gate.weight"));
        }

        // The evaluator reads it as Qwen2-MoE and routes over both experts.
        LlamaModel model = LlamaModel.Load(moe);
        Assert.Equal((MoeLayout.Qwen2Moe, 2, 2, 384, true), (model.Config.MoeLayout, model.Config.ExpertCount, model.Config.ExpertsPerToken,
            model.Config.SharedExpertIntermediateSize, model.Config.NormalizeTopK));
        var routedLayers = new HashSet<int>();
        model.Routing = (layer, _, _, _) => { lock (routedLayers) routedLayers.Add(layer); };
        PerplexityResult r = PerplexityEvaluator.Evaluate(model, ByteTokenizer.Instance.Encode(Encoding.UTF8.GetBytes("int main(void) { return 0; }\n" + new string('x', 200))));
        Assert.True(double.IsFinite(r.Perplexity) && r.Perplexity > 1);
        Assert.Equal([0, 1, 2, 3], routedLayers.Order());
    }

    [Fact]
    public void Random_gates_draw_the_shared_experts_gate_after_the_routed_experts_in_each_layer()
    {
        // mergekit draws one (layers, experts + shared, hidden) tensor: the shared expert is one more column.
        MoeBuildResult qwen = MoeBuilder.Build(Config(WithShared("random", "architecture: qwen", sharedPrompts: "")),
            Path.Combine(TestPaths.NewTempDir(), "moe"), false, false, seed: 5);
        Assert.Equal(MoeOutputArchitecture.Qwen2Moe, qwen.Architecture);
        var random = new Random(5);
        for (int l = 0; l < 4; l++)
            for (int x = 0; x < 3; x++)
                for (int i = 0; i < 128; i++)
                    Assert.Equal((float)MoeGates.Gaussian(random), qwen.GateVectors![l][x][i]);
    }

    [Theory]
    [InlineData("", "gate_mode: hidden", "", "DeepSeek MoE")] // an ungated shared expert: mergekit writes DeepSeek
    [InlineData("architecture: qwen", "gate_mode: uniform_random", "", "Qwen MoE: needs the shared expert to have positive_prompts")]
    [InlineData("architecture: mixtral", "gate_mode: hidden", "positive_prompts: [\"p\"]", "Mixtral: has no shared experts")]
    [InlineData("architecture: qwen3", "gate_mode: hidden", "", "Qwen3 MoE: has no shared experts")]
    public void Configs_no_written_architecture_fits_are_refused_with_mergekits_reason(string architecture, string gateMode, string sharedPrompts, string message)
    {
        string body = WithShared("hidden", architecture, sharedPrompts).Replace("gate_mode: hidden", gateMode);
        string output = Path.Combine(TestPaths.NewTempDir(), "moe");
        var error = Assert.Throws<WeldException>(() => MoeBuilder.Build(Config(body), output, false, false, 0));
        Assert.Contains(message, error.Message);
        Assert.False(Directory.Exists(output));
    }

    [Fact]
    public void Qwen_without_a_shared_expert_and_qwen3_on_llama_models_are_refused()
    {
        string body = WithShared("hidden").Split("shared_experts:")[0];
        var qwen = Assert.Throws<WeldException>(() => MoeBuilder.Build(Config("architecture: qwen\n" + body), "unused", false, true, 0));
        Assert.Contains("Qwen MoE: needs exactly one shared expert", qwen.Message);
        Assert.Contains("Qwen3 MoE: needs qwen3 input models, not 'llama'", qwen.Message);
    }
}
