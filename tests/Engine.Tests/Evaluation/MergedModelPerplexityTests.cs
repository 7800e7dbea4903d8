using Weld.Engine.Config;
using Weld.Engine.Evaluation;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary>
/// Merges built by Weld (and a LoRA folded here) scored by Weld's forward pass, against the reference perplexities
/// of the same merges computed in float64 by an independent implementation.
/// </summary>
public class MergedModelPerplexityTests
{
    private const string FineTunes = """
          - model: {zoo}/lm-ft-prose
            parameters: {weight: W}
          - model: {zoo}/lm-ft-c
            parameters: {weight: W}
          - model: {zoo}/lm-ft-python
            parameters: {weight: W}
          - model: {zoo}/lm-ft-markup
            parameters: {weight: W}
        """;

    private static string Recipe(string reference, string outDtype) => reference switch
    {
        "soup-uniform-4ft" => $"models:\n{FineTunes.Replace("W", "0.25")}\nmerge_method: linear\nout_dtype: {outDtype}\n",
        "task-arithmetic-l0.5" => $"models:\n{FineTunes.Replace("W", "0.5")}\nbase_model: {{zoo}}/lm-base\nmerge_method: task_arithmetic\nout_dtype: {outDtype}\n",
        "task-arithmetic-l1.0" => $"models:\n{FineTunes.Replace("W", "1.0")}\nbase_model: {{zoo}}/lm-base\nmerge_method: task_arithmetic\nout_dtype: {outDtype}\n",
        _ => throw new ArgumentOutOfRangeException(nameof(reference)),
    };

    [Theory]
    [InlineData("soup-uniform-4ft", "float32", "ppl", "prose")]
    [InlineData("soup-uniform-4ft", "bfloat16", "ppl_after_bf16_rounding", "c")]
    [InlineData("task-arithmetic-l0.5", "float32", "ppl", "python")]
    [InlineData("task-arithmetic-l0.5", "bfloat16", "ppl_after_bf16_rounding", "markup")]
    [InlineData("task-arithmetic-l1.0", "float32", "ppl", "c")]
    [InlineData("task-arithmetic-l1.0", "bfloat16", "ppl_after_bf16_rounding", "prose")]
    public void Weld_merges_score_the_reference_perplexity(string reference, string outDtype, string field, string domain)
    {
        string yaml = Recipe(reference, outDtype).Replace("{zoo}", TestPaths.SharedModels, StringComparison.Ordinal);
        string output = Path.Combine(TestPaths.NewTempDir(), "merged");
        MergeRunner.Run(RecipeParser.Parse(yaml, $"{reference}.yml"), new MergeOptions { OutputPath = output });

        using var folder = ModelFolder.Open(output);
        PerplexityResult result = PerplexityTests.Score(LlamaModel.Load(folder), domain);
        PerplexityTests.AssertClose(ReferenceMetrics.Ppl(reference, domain, field), result.Perplexity, $"{reference} ({outDtype})/{domain}");
    }

    [Fact]
    public void Lm_base_with_the_python_lora_folded_in_scores_the_reference()
    {
        using var baseFolder = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var adapter = ModelFolder.Open(TestPaths.Model("lm-lora-python"));
        double scale = (double)adapter.AdapterConfig!["lora_alpha"]! / (double)adapter.AdapterConfig!["r"]!;
        Assert.Equal(2.0, scale);
        TensorSet weights = TensorSet.Load(baseFolder);
        int folded = 0;
        foreach (string name in baseFolder.TensorNames)
        {
            string prefix = "base_model.model." + name[..^".weight".Length];
            if (!adapter.Contains(prefix + ".lora_A.weight")) continue;
            float[] w = weights.Get(name);
            long[] shape = weights.GetShape(name);
            int outFeatures = (int)shape[0], inFeatures = (int)shape[1];
            float[] a = Read(adapter, prefix + ".lora_A.weight");
            float[] b = Read(adapter, prefix + ".lora_B.weight");
            int r = a.Length / inFeatures;
            var merged = new float[w.Length];
            for (int i = 0; i < outFeatures; i++)
            {
                for (int j = 0; j < inFeatures; j++)
                {
                    double delta = 0;
                    for (int p = 0; p < r; p++) delta += (double)b[i * r + p] * a[p * inFeatures + j];
                    merged[i * inFeatures + j] = (float)(w[i * inFeatures + j] + scale * delta);
                }
            }

            weights.Set(name, shape, merged);
            folded++;
        }

        Assert.Equal(4 * 7, folded);
        var model = new LlamaModel(LlamaConfig.FromModelConfig(baseFolder.Config!), weights);
        PerplexityTests.AssertClose(ReferenceMetrics.Ppl("lm-base+lora-python", "python", "ppl"),
            PerplexityTests.Score(model, "python").Perplexity, "lm-base+lora-python/python");
    }

    private static float[] Read(ModelFolder folder, string name)
    {
        ModelTensor tensor = folder.GetTensor(name);
        var values = new float[tensor.ElementCount];
        tensor.ReadFloat32(0, values);
        return values;
    }
}
