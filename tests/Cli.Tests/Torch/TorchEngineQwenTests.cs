using System.Text.Json.Nodes;
using Weld.Engine;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Evaluation;
using Weld.Evaluation.Torch;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Torch;

/// <summary>
/// The torch engine on random tiny Qwen2-MoE (q/k/v biases, shared expert and its sigmoid gate, norm_topk_prob,
/// decoder_sparse_step, mlp_only_layers), Qwen3 (q_norm/k_norm) and Qwen3-MoE models: perplexity within 1e-5 relative
/// of the built-in engine, which is itself checked against a float64 reference in Engine.Tests.
/// </summary>
public class TorchEngineQwenTests
{
    private const int Experts = 4, ExpertWidth = 48, SharedWidth = 64;

    [Theory]
    [InlineData(2, false, 1, new[] { 1 }, 41)]
    [InlineData(1, true, 2, new int[0], 42)]
    [InlineData(3, false, 1, new int[0], 43)]
    public void A_tiny_random_qwen2_moe_scores_the_same_on_both_engines(int perToken, bool normTopK, int sparseStep, int[] mlpOnly, int seed)
    {
        string folder = TinyQwen(TestPaths.NewTempDir(), seed, config =>
        {
            config["model_type"] = "qwen2_moe";
            config["architectures"] = new JsonArray("Qwen2MoeForCausalLM");
            config["num_experts"] = Experts;
            config["num_experts_per_tok"] = perToken;
            config["moe_intermediate_size"] = ExpertWidth;
            config["shared_expert_intermediate_size"] = SharedWidth;
            config["norm_topk_prob"] = normTopK;
            config["decoder_sparse_step"] = sparseStep;
            config["mlp_only_layers"] = new JsonArray(mlpOnly.Select(l => (JsonNode)l).ToArray());
        }, headNorms: false, attentionBias: true);
        LlamaConfig config = AssertBothEnginesAgree(folder, $"qwen2-moe top-{perToken} norm {normTopK} step {sparseStep}");
        Assert.Equal(MoeLayout.Qwen2Moe, config.MoeLayout);
        Assert.Contains(Enumerable.Range(0, config.LayerCount), config.IsSparseLayer);
        if (sparseStep > 1 || mlpOnly.Length > 0) Assert.Contains(Enumerable.Range(0, config.LayerCount), l => !config.IsSparseLayer(l));
    }

    [Fact]
    public void A_tiny_random_qwen3_scores_the_same_on_both_engines()
    {
        string folder = TinyQwen(TestPaths.NewTempDir(), 44, config =>
        {
            config["model_type"] = "qwen3";
            config["architectures"] = new JsonArray("Qwen3ForCausalLM");
        }, headNorms: true, attentionBias: false);
        Assert.False(AssertBothEnginesAgree(folder, "qwen3").IsMoe);
    }

    [Theory]
    [InlineData(2, true, 45)]
    [InlineData(3, false, 46)]
    public void A_tiny_random_qwen3_moe_scores_the_same_on_both_engines(int perToken, bool normTopK, int seed)
    {
        string folder = TinyQwen(TestPaths.NewTempDir(), seed, config =>
        {
            config["model_type"] = "qwen3_moe";
            config["architectures"] = new JsonArray("Qwen3MoeForCausalLM");
            config["num_experts"] = Experts;
            config["num_experts_per_tok"] = perToken;
            config["moe_intermediate_size"] = ExpertWidth;
            config["norm_topk_prob"] = normTopK;
        }, headNorms: true, attentionBias: false);
        Assert.Equal(MoeLayout.Qwen3Moe, AssertBothEnginesAgree(folder, $"qwen3-moe top-{perToken} norm {normTopK}").MoeLayout);
    }

    [Fact]
    public void A_qwen2_moe_built_by_weld_moe_scores_the_same_on_both_engines()
    {
        string folder = TestPaths.NewTempDir();
        string output = Path.Combine(folder, "qwen");
        Weld.Engine.Moe.MoeBuilder.Build(Weld.Engine.Moe.MoeConfig.Parse($"""
            base_model: '{TestPaths.Model("lm-base")}'
            gate_mode: random
            architecture: qwen
            experts:
              - source_model: '{TestPaths.Model("lm-ft-c")}'
              - source_model: '{TestPaths.Model("lm-ft-python")}'
            shared_experts:
              - source_model: '{TestPaths.Model("lm-ft-prose")}'
            """, Path.Combine(folder, "moe.yml")), output, false, false, seed: 1);
        Assert.Equal(MoeLayout.Qwen2Moe, AssertBothEnginesAgree(output, "weld moe qwen").MoeLayout);
    }

    [Fact]
    public void A_misshapen_head_norm_is_refused_before_any_native_call()
    {
        string folder = TinyQwen(TestPaths.NewTempDir(), 47, config => config["model_type"] = "qwen3", headNorms: true, attentionBias: false,
            headNormLength: 31);
        using ModelFolder model = ModelFolder.Open(folder);
        var error = Assert.Throws<InvalidModelFileException>(() => TorchLlamaModel.Load(model));
        Assert.Contains("self_attn.q_norm.weight", error.Message);
        Assert.Contains("[31]", error.Message);
    }

    private static LlamaConfig AssertBothEnginesAgree(string folder, string label)
    {
        using ModelFolder model = ModelFolder.Open(folder);
        LlamaModel builtin = LlamaModel.Load(model);
        using TorchLlamaModel torch = TorchLlamaModel.Load(model);
        Assert.Equal(builtin.Config.MoeLayout, torch.Config.MoeLayout);
        var options = new PerplexityOptions { Bytes = 8192 };
        foreach (string domain in ZooTasks.Domains)
        {
            double a = PerplexityEvaluator.EvaluateFile(builtin, ByteTokenizer.Instance, ReferenceMetrics.Text(domain), options).Perplexity;
            double b = PerplexityEvaluator.EvaluateFile(torch, ByteTokenizer.Instance, ReferenceMetrics.Text(domain), options).Perplexity;
            TorchEngineParityTests.AssertRelative(a, b, 1e-5, $"{label} / {domain}");
        }

        return torch.Config;
    }

    /// <summary>
    /// lm-base (F32) with its config edited by <paramref name="edit"/>; each sparse layer's MLP replaced by random
    /// Qwen-named experts (and a shared expert with its gate when the config asks for one); optionally random q/k/v
    /// biases and Qwen3 q_norm/k_norm weights.
    /// </summary>
    private static string TinyQwen(string folder, int seed, Action<JsonObject> edit, bool headNorms, bool attentionBias, int headNormLength = 0)
    {
        string source = TestPaths.Model("lm-base");
        var json = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        json["torch_dtype"] = "float32";
        edit(json);
        File.WriteAllText(Path.Combine(folder, "config.json"), json.ToJsonString());
        LlamaConfig config = LlamaConfig.FromModelConfig(ModelConfig.Parse(json.ToJsonString()));
        int h = config.HiddenSize, q = config.HeadCount * config.HeadDim, kv = config.KeyValueHeadCount * config.HeadDim;

        var tensors = new SortedDictionary<string, (long[] Shape, float[] Values)>(StringComparer.Ordinal);
        using (ModelFolder model = ModelFolder.Open(source))
        {
            foreach (string name in model.TensorNames)
                tensors[name] = (model.GetTensor(name).Shape, ModelFiles.Read(model, name));
        }

        var random = new Random(seed);
        void Add(string name, float centre, float scale, params long[] shape)
        {
            long count = 1;
            foreach (long d in shape) count *= d;
            var values = new float[count];
            for (int i = 0; i < values.Length; i++) values[i] = centre + scale * (float)(random.NextDouble() * 2 - 1);
            tensors[name] = (shape, values);
        }

        for (int l = 0; l < config.LayerCount; l++)
        {
            string a = $"model.layers.{l}.self_attn.";
            if (attentionBias)
            {
                Add(a + "q_proj.bias", 0, 0.3f, q);
                Add(a + "k_proj.bias", 0, 0.3f, kv);
                Add(a + "v_proj.bias", 0, 0.3f, kv);
            }

            if (headNorms)
            {
                Add(a + "q_norm.weight", 1, 0.5f, headNormLength > 0 ? headNormLength : config.HeadDim);
                Add(a + "k_norm.weight", 1, 0.5f, config.HeadDim);
            }

            if (!config.IsSparseLayer(l)) continue;
            string p = $"model.layers.{l}.mlp.";
            foreach (string dense in (string[])["gate_proj", "up_proj", "down_proj"]) tensors.Remove(p + dense + ".weight");
            Add(p + "gate.weight", 0, 0.5f, config.ExpertCount, h);
            for (int e = 0; e < config.ExpertCount; e++)
            {
                Add($"{p}experts.{e}.gate_proj.weight", 0, 0.08f, config.ExpertWidth, h);
                Add($"{p}experts.{e}.up_proj.weight", 0, 0.08f, config.ExpertWidth, h);
                Add($"{p}experts.{e}.down_proj.weight", 0, 0.05f, h, config.ExpertWidth);
            }

            if (config.SharedExpertIntermediateSize > 0)
            {
                int s = config.SharedExpertIntermediateSize;
                Add(p + "shared_expert.gate_proj.weight", 0, 0.08f, s, h);
                Add(p + "shared_expert.up_proj.weight", 0, 0.08f, s, h);
                Add(p + "shared_expert.down_proj.weight", 0, 0.05f, h, s);
                Add(p + "shared_expert_gate.weight", 0, 0.3f, 1, h);
            }
        }

        var headers = tensors.Select(t => new TensorHeader(t.Key, DType.F32, t.Value.Shape)).ToList();
        using (var writer = new SafeTensorsWriter(Path.Combine(folder, "model.safetensors"), headers, null))
        {
            foreach (var t in tensors) writer.WriteFloat32(t.Value.Values);
            writer.Complete();
        }

        return folder;
    }
}
