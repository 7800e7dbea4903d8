using System.Numerics.Tensors;
using System.Text;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Moe;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Moe;

/// <summary><see cref="MoeConfig"/> and <see cref="MoeBuilder"/> on the zoo's fine-tunes (mergekit-moe semantics).</summary>
public sealed class MoeBuilderTests
{
    private static string Q(string path) => "'" + path.Replace("'", "''") + "'";

    private static MoeConfig Config(string body) => MoeConfig.Parse(body, Path.Combine(TestPaths.NewTempDir(), "moe.yml"));

    private static string TwoExperts(string gateMode, string extra = "", string expertExtra = "") => $"""
        base_model: {Q(TestPaths.Model("lm-base"))}
        gate_mode: {gateMode}
        {extra}
        experts:
          - source_model: {Q(TestPaths.Model("lm-ft-c"))}
            positive_prompts: ["#include <stdio.h>\nint main(void)", "static int x;"]
            negative_prompts: ["def f():"]
        {expertExtra}
          - source_model: {Q(TestPaths.Model("lm-ft-python"))}
            positive_prompts: ["import os\n", "def main():\n    return 0"]
        """;

    private static float[] Read(ModelFolder folder, string name)
    {
        ModelTensor t = folder.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }

    [Fact]
    public void Random_gates_write_the_mixtral_layout_from_the_experts_and_the_base()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "moe");
        MoeBuildResult result = MoeBuilder.Build(Config(TwoExperts("random", "experts_per_token: 1")), output, false, false, seed: 7);
        Assert.Equal((2, 4), (result.Experts, result.Layers));
        using var moe = ModelFolder.Open(output);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var c = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        using var python = ModelFolder.Open(TestPaths.Model("lm-ft-python"));
        Assert.Equal("MixtralForCausalLM", moe.Config!.Architecture);
        Assert.Equal("mixtral", moe.Config.ModelType);
        Assert.Equal(2, (int)moe.Config.Raw["num_local_experts"]!);
        Assert.Equal(1, (int)moe.Config.Raw["num_experts_per_tok"]!);
        Assert.Equal("bfloat16", moe.Config.TorchDType);
        Assert.DoesNotContain(moe.TensorNames, n => n.Contains(".mlp.", StringComparison.Ordinal));
        Assert.Equal(baseline.TensorNames.Count - 12 + 2 * 12 + 4, moe.TensorNames.Count);
        Assert.Equal(Read(c, "model.layers.2.mlp.gate_proj.weight"), Read(moe, "model.layers.2.block_sparse_moe.experts.0.w1.weight"));
        Assert.Equal(Read(c, "model.layers.2.mlp.down_proj.weight"), Read(moe, "model.layers.2.block_sparse_moe.experts.0.w2.weight"));
        Assert.Equal(Read(python, "model.layers.0.mlp.up_proj.weight"), Read(moe, "model.layers.0.block_sparse_moe.experts.1.w3.weight"));
        Assert.Equal(Read(baseline, "model.layers.1.self_attn.q_proj.weight"), Read(moe, "model.layers.1.self_attn.q_proj.weight"));
        Assert.Equal(Read(baseline, "lm_head.weight"), Read(moe, "lm_head.weight"));
        Assert.Equal([2L, 128L], moe.GetTensor("model.layers.3.block_sparse_moe.gate.weight").Shape);

        // The evaluator loads it as a Mixtral model.
        LlamaModel model = LlamaModel.Load(moe);
        Assert.True(model.Config.IsMoe);
        PerplexityResult r = PerplexityEvaluator.Evaluate(model, ByteTokenizer.Instance.Encode(Encoding.UTF8.GetBytes(new string('a', 300))));
        Assert.True(double.IsFinite(r.Perplexity));

        // Seeded: the same seed gives the same routers, another seed others.
        string again = Path.Combine(TestPaths.NewTempDir(), "moe");
        MoeBuilder.Build(Config(TwoExperts("random")), again, false, false, seed: 7);
        using var second = ModelFolder.Open(again);
        Assert.Equal(Read(moe, "model.layers.3.block_sparse_moe.gate.weight"), Read(second, "model.layers.3.block_sparse_moe.gate.weight"));
    }

    [Theory]
    [InlineData("hidden", false)]
    [InlineData("hidden_avg", true)]
    public void Hidden_gates_are_unit_normed_prompt_means_of_each_layers_input(string mode, bool average)
    {
        MoeConfig config = Config(TwoExperts(mode, "dtype: float32"));
        string output = Path.Combine(TestPaths.NewTempDir(), "moe");
        MoeBuildResult result = MoeBuilder.Build(config, output, false, false, seed: 0);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        LlamaModel model = LlamaModel.Load(baseline);
        float[] Mean(IReadOnlyList<string> prompts, int layer)
        {
            var sum = new float[128];
            foreach (string p in prompts)
                TensorPrimitives.Add(sum, model.LayerInputs(Encoding.UTF8.GetBytes(p).Select(b => (int)b).ToArray(), average)[layer], sum);
            TensorPrimitives.Divide(sum, prompts.Count, sum);
            return sum;
        }

        using var moe = ModelFolder.Open(output);
        for (int layer = 0; layer < 4; layer++)
        {
            float[] router = Read(moe, $"model.layers.{layer}.block_sparse_moe.gate.weight");
            for (int e = 0; e < 2; e++)
            {
                MoeExpert expert = config.Experts[e];
                float[] expected = Mean(expert.PositivePrompts, layer);
                if (expert.NegativePrompts.Count > 0) TensorPrimitives.Subtract(expected, Mean(expert.NegativePrompts, layer), expected);
                TensorPrimitives.Divide(expected, TensorPrimitives.Norm(expected), expected);
                float[] row = router[(e * 128)..((e + 1) * 128)];
                Assert.Equal(1f, TensorPrimitives.Norm(row), 1e-5f);
                for (int d = 0; d < 128; d++) Assert.Equal(expected[d], row[d], 1e-5f);
                Assert.Equal(expected, result.GateVectors![layer][e]);
            }
        }
    }

    [Fact]
    public void Cheap_embed_gates_are_the_normed_embedding_sum_in_every_layer()
    {
        MoeConfig config = Config(TwoExperts("cheap_embed", "dtype: float32"));
        MoeBuildResult result = MoeBuilder.Build(config, Path.Combine(TestPaths.NewTempDir(), "moe"), false, false, seed: 0);
        using var baseline = ModelFolder.Open(TestPaths.Model("lm-base"));
        float[] table = Read(baseline, "model.embed_tokens.weight");
        float[] Sum(IReadOnlyList<string> prompts)
        {
            var sum = new float[128];
            foreach (byte b in prompts.SelectMany(p => Encoding.UTF8.GetBytes(p))) TensorPrimitives.Add(sum, table.AsSpan(b * 128, 128), sum);
            TensorPrimitives.Divide(sum, TensorPrimitives.Norm(sum), sum);
            return sum;
        }

        float[] c = Sum(config.Experts[0].PositivePrompts);
        TensorPrimitives.Subtract(c, Sum(config.Experts[0].NegativePrompts), c);
        TensorPrimitives.Divide(c, TensorPrimitives.Norm(c), c);
        for (int layer = 0; layer < 4; layer++)
            for (int d = 0; d < 128; d++) Assert.Equal(c[d], result.GateVectors![layer][0][d], 1e-5f);
    }

    [Fact]
    public void Residual_scale_multiplies_w2_and_noise_scale_perturbs_every_expert_weight()
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "moe");
        MoeBuilder.Build(Config(TwoExperts("uniform_random", "dtype: float32", "    residual_scale: 0.5\n    noise_scale: 0.01")), output, false, false, seed: 3);
        using var moe = ModelFolder.Open(output);
        using var c = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        using var python = ModelFolder.Open(TestPaths.Model("lm-ft-python"));
        float[] w1 = Read(moe, "model.layers.0.block_sparse_moe.experts.0.w1.weight"), g = Read(c, "model.layers.0.mlp.gate_proj.weight");
        float[] noise = w1.Zip(g, (a, b) => a - b).ToArray();
        double std = Math.Sqrt(noise.Sum(x => (double)x * x) / noise.Length);
        Assert.InRange(std, 0.009, 0.011);
        float[] w2 = Read(moe, "model.layers.0.block_sparse_moe.experts.0.w2.weight"), down = Read(c, "model.layers.0.mlp.down_proj.weight");
        double ratio = TensorPrimitives.Dot(w2, down) / TensorPrimitives.Dot(down, down);
        Assert.InRange(ratio, 0.49, 0.51);
        Assert.Equal(Read(python, "model.layers.0.mlp.down_proj.weight"), Read(moe, "model.layers.0.block_sparse_moe.experts.1.w2.weight"));
        float bound = 1 / MathF.Sqrt(128);
        Assert.All(Read(moe, "model.layers.1.block_sparse_moe.gate.weight"), v => Assert.InRange(v, -bound, bound));
    }

    [Theory]
    [InlineData("experts_per_token: 3", "at least as many experts as experts_per_token")]
    [InlineData("gate_mode_x: 1", ":1: unknown key 'gate_mode_x'")]
    [InlineData("shared_experts: [{source_model: x, positive_prompts: [p]}, {source_model: y}]", "to all shared experts or to none")]
    [InlineData("architecture: llama", "architecture 'llama' matches none")]
    public void Bad_configs_are_refused_with_the_reason(string extra, string message)
    {
        string body = $"""
            {extra}
            base_model: a
            experts:
              - source_model: b
                positive_prompts: ["x"]
              - source_model: c
                positive_prompts: ["y"]
            """;
        var error = Assert.Throws<WeldException>(() => MoeConfig.Parse(body, "moe.yml"));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void Prompt_checks_follow_mergekit_and_name_the_expert_line()
    {
        const string missing = """
            base_model: a
            experts:
              - source_model: b
                positive_prompts: ["x"]
              - source_model: c
            """;
        Assert.Contains("moe.yml:5: expert 1 (c) has no positive_prompts", Assert.Throws<WeldException>(() => MoeConfig.Parse(missing, "moe.yml")).Message);
        Assert.Equal("random", MoeConfig.Parse(missing + "\ngate_mode: random\n", "moe.yml").GateMode); // random gates need no prompts
        const string same = """
            base_model: a
            experts:
              - source_model: b
                positive_prompts: ["x"]
              - source_model: c
                positive_prompts: ["x"]
            """;
        Assert.Contains("identical for all experts", Assert.Throws<WeldException>(() => MoeConfig.Parse(same, "moe.yml")).Message);
        const string models = """
            base_model: a
            experts:
              - source_model: b
                positive_prompts: ["x"]
              - source_model: b
                positive_prompts: ["y"]
            """;
        Assert.Contains("all experts are the same model", Assert.Throws<WeldException>(() => MoeConfig.Parse(models, "moe.yml")).Message);
    }

    [Fact]
    public void A_missing_expert_model_names_its_config_line_and_nothing_is_written()
    {
        string folder = TestPaths.NewTempDir();
        string body = TwoExperts("random").Replace(TestPaths.Model("lm-ft-python"), Path.Combine(folder, "nope"));
        string output = Path.Combine(folder, "out");
        var error = Assert.Throws<WeldException>(() => MoeBuilder.Build(Config(body), output, false, false, 0));
        Assert.Contains(":9: expert 1", error.Message);
        Assert.False(Directory.Exists(output));
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder)); // no partial folder, no lock left behind
    }
}
