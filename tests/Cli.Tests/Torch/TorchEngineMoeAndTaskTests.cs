using System.Text.Json.Nodes;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Evaluation;
using Weld.Evaluation.Torch;
using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests.Torch;

/// <summary>The torch engine on a tiny random Mixtral, and on multiple-choice tasks built from the zoo's held-out texts.</summary>
public class TorchEngineMoeAndTaskTests
{
    [Theory]
    [InlineData(4, 2, 31)]
    [InlineData(3, 1, 32)]
    public void A_tiny_random_mixtral_scores_the_same_on_both_engines(int experts, int perToken, int seed)
    {
        string folder = TinyMixtral(TestPaths.NewTempDir(), experts, perToken, seed);
        using ModelFolder model = ModelFolder.Open(folder);
        LlamaModel builtin = LlamaModel.Load(model);
        using TorchLlamaModel torch = TorchLlamaModel.Load(model);
        Assert.True(torch.Config.IsMoe);
        var options = new PerplexityOptions { Bytes = 8192 };
        foreach (string domain in ZooTasks.Domains)
        {
            double a = PerplexityEvaluator.EvaluateFile(builtin, ByteTokenizer.Instance, ReferenceMetrics.Text(domain), options).Perplexity;
            double b = PerplexityEvaluator.EvaluateFile(torch, ByteTokenizer.Instance, ReferenceMetrics.Text(domain), options).Perplexity;
            TorchEngineParityTests.AssertRelative(a, b, 1e-5, $"mixtral {experts}x top-{perToken} / {domain}");
        }
    }

    [Theory]
    [InlineData("lm-base")]
    [InlineData("lm-ft-python")]
    public void Both_engines_pick_the_same_choice_on_every_item(string name)
    {
        using ModelFolder folder = ModelFolder.Open(TestPaths.Model(name));
        LlamaModel builtin = LlamaModel.Load(folder);
        using TorchLlamaModel torch = TorchLlamaModel.Load(folder);
        foreach (string domain in ZooTasks.Domains)
        {
            var items = ZooTasks.Lines(domain, ZooTasks.ItemsPerDomain).Select((l, i) => MultipleChoiceTask.Parse(l, $"{domain}:{i + 1}")).ToList();
            MultipleChoiceResult a = MultipleChoiceEvaluator.Evaluate(builtin, ByteTokenizer.Instance, items);
            MultipleChoiceResult b = MultipleChoiceEvaluator.Evaluate(torch, ByteTokenizer.Instance, items);
            Assert.Equal(a.Predictions, b.Predictions);
            Assert.Equal(a.NormPredictions, b.NormPredictions);
            Assert.Equal(a.Accuracy, b.Accuracy);
            for (int i = 0; i < items.Count; i++)
                for (int c = 0; c < items[i].Choices.Count; c++)
                    TorchEngineParityTests.AssertRelative(a.LogLikelihoods[i][c], b.LogLikelihoods[i][c], 1e-5, $"{name}/{domain} item {i + 1} choice {c}");
        }
    }

    /// <summary>lm-base with every MLP replaced by a Mixtral block of random experts (F32), in a fresh folder.</summary>
    internal static string TinyMixtral(string folder, int experts, int perToken, int seed)
    {
        string source = TestPaths.Model("lm-base");
        var config = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        config["model_type"] = "mixtral";
        config["architectures"] = new JsonArray("MixtralForCausalLM");
        config["num_local_experts"] = experts;
        config["num_experts_per_tok"] = perToken;
        config["torch_dtype"] = "float32";
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());

        int hidden = (int)config["hidden_size"]!, inter = (int)config["intermediate_size"]!, layers = (int)config["num_hidden_layers"]!;
        var tensors = new SortedDictionary<string, (long[] Shape, float[] Values)>(StringComparer.Ordinal);
        using (ModelFolder model = ModelFolder.Open(source))
        {
            foreach (string name in model.TensorNames)
                if (!name.Contains(".mlp.", StringComparison.Ordinal))
                    tensors[name] = (model.GetTensor(name).Shape, ModelFiles.Read(model, name));
        }

        var random = new Random(seed);
        float[] Random(long count, float scale)
        {
            var values = new float[count];
            for (int i = 0; i < values.Length; i++) values[i] = scale * (float)(random.NextDouble() * 2 - 1);
            return values;
        }

        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.block_sparse_moe.";
            tensors[p + "gate.weight"] = ([experts, hidden], Random((long)experts * hidden, 0.5f));
            for (int e = 0; e < experts; e++)
            {
                tensors[$"{p}experts.{e}.w1.weight"] = ([inter, hidden], Random((long)inter * hidden, 0.08f));
                tensors[$"{p}experts.{e}.w2.weight"] = ([hidden, inter], Random((long)hidden * inter, 0.05f));
                tensors[$"{p}experts.{e}.w3.weight"] = ([inter, hidden], Random((long)inter * hidden, 0.08f));
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
