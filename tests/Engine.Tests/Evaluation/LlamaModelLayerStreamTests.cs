using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// <see cref="LlamaModel.StreamLayerInputs"/> (one layer's weights in memory at a time) against
/// <see cref="LlamaModel.LayerInputs"/> on the whole model: the same bits, on a random tiny model with biases and
/// 4:1 GQA stored in bfloat16 and float32, and on the zoo's base.
/// </summary>
public partial class LlamaModelTests
{
    /// <summary>Writes <paramref name="weights"/> as one safetensors file (sorted names) with a config.json, into
    /// <paramref name="folder"/> (created) or a fresh temporary folder.</summary>
    internal static string WriteModelFolder(TensorSet weights, string configJson, DType dtype, string? folder = null)
    {
        if (folder is null) folder = TestPaths.NewTempDir();
        else Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), configJson);
        string[] names = weights.Names.Order(StringComparer.Ordinal).ToArray();
        TensorHeader[] headers = names.Select(n => new TensorHeader(n, dtype, weights.GetShape(n))).ToArray();
        using (var writer = new SafeTensorsWriter(Path.Combine(folder, ShardLayout.SingleFileName), headers, null))
        {
            foreach (string name in names) writer.WriteFloat32(weights.Get(name));
            writer.Complete();
        }

        return folder;
    }

    private static string TinyConfigJson(bool tied) => $$"""
        {"model_type": "llama", "hidden_size": {{Hidden}}, "intermediate_size": {{Intermediate}}, "num_hidden_layers": {{Layers}},
         "num_attention_heads": {{Heads}}, "num_key_value_heads": {{KvHeads}}, "head_dim": {{HeadDim}},
         "vocab_size": {{Vocab}}, "rms_norm_eps": {{Eps}}, "rope_theta": {{Theta}}, "tie_word_embeddings": {{(tied ? "true" : "false")}}}
        """;

    [Theory]
    [InlineData(DType.BF16, false)]
    [InlineData(DType.BF16, true)]
    [InlineData(DType.F32, false)]
    public void Streamed_layer_inputs_are_bit_identical_to_the_whole_model_pass(DType dtype, bool average)
    {
        (_, TensorSet weights) = TinyModel(tied: false);
        var random = new Random(77);
        for (int l = 0; l < Layers; l++)
            foreach ((string name, int width) in (ReadOnlySpan<(string, int)>)[("q_proj", Heads * HeadDim), ("k_proj", KvHeads * HeadDim), ("v_proj", KvHeads * HeadDim)])
                weights.Set($"model.layers.{l}.self_attn.{name}.bias", [width], Enumerable.Range(0, width).Select(_ => (float)random.NextDouble() - 0.5f).ToArray());
        string folder = WriteModelFolder(weights, TinyConfigJson(tied: false), dtype);
        int[][] sequences = [[3, 9, 27, 5], [1], [31, 0, 7, 7, 7, 12, 30, 2, 19, 4, 4]];

        using var model = ModelFolder.Open(folder);
        var whole = LlamaModel.Load(model);
        var layersDone = new List<int>();
        float[][][] streamed = LlamaModel.StreamLayerInputs(model, sequences, average, layerDone: layersDone.Add);
        Assert.Equal(Enumerable.Range(0, Layers - 1), layersDone); // the last layer's weights are never read
        for (int s = 0; s < sequences.Length; s++)
        {
            float[][] expected = whole.LayerInputs(sequences[s], average);
            Assert.Equal(Layers, streamed[s].Length);
            for (int l = 0; l < Layers; l++) Assert.Equal(expected[l], streamed[s][l]); // exact
        }

        Assert.False(streamed[0][1].SequenceEqual(streamed[0][0]));
    }

    [Fact]
    public void Streamed_layer_inputs_on_the_zoo_base_match_the_whole_model_bits()
    {
        using var model = ModelFolder.Open(TestPaths.Model("lm-base"));
        var whole = LlamaModel.Load(model);
        int[][] sequences = new[] { "#include <stdio.h>\n", "def f():\n    return 1", "<html>" }
            .Select(s => s.Select(ch => (int)ch).ToArray()).ToArray();
        float[][][] streamed = LlamaModel.StreamLayerInputs(model, sequences, averageOverSequence: false);
        for (int s = 0; s < sequences.Length; s++)
        {
            float[][] expected = whole.LayerInputs(sequences[s], averageOverSequence: false);
            for (int l = 0; l < expected.Length; l++) Assert.Equal(expected[l], streamed[s][l]);
        }
    }

    [Fact]
    public void Streamed_layer_inputs_refuse_bad_tokens_and_empty_sequences()
    {
        using var model = ModelFolder.Open(TestPaths.Model("lm-base"));
        Assert.Contains("vocabulary", Assert.Throws<WeldException>(() => LlamaModel.StreamLayerInputs(model, [[1, 256]], false)).Message);
        Assert.Contains("empty", Assert.Throws<WeldException>(() => LlamaModel.StreamLayerInputs(model, [[]], false)).Message);
    }
}
