using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.Models;
using Weld.Engine.Planning;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;
using static Weld.Engine.Tests.Tokenizers.VocabularyFixtures;

namespace Weld.Engine.Tests.Tokenizers;

/// <summary>
/// fisher over an output vocabulary: each model's Fisher diagonal of embed_tokens / lm_head is permuted with the same
/// row map as the tensor it weighs, so a row a model takes from other models comes with their Fisher rows.
/// </summary>
public sealed class VocabularyFisherTests
{
    private const string Embed = "model.embed_tokens.weight";
    private const string Head = "lm_head.weight";

    /// <summary>A Fisher file for every tensor of a model folder: seeded positive values, every tenth exactly zero.</summary>
    private static string WriteFisher(string model, string path, int seed)
    {
        var random = new Random(seed);
        using var folder = ModelFolder.Open(model);
        string[] names = folder.TensorNames.Order(StringComparer.Ordinal).ToArray();
        var headers = names.Select(n => new TensorHeader(n, DType.F32, folder.GetTensor(n).Shape)).ToArray();
        using var writer = new SafeTensorsWriter(path, headers, null);
        foreach (string n in names)
        {
            var values = new float[folder.GetTensor(n).ElementCount];
            for (int i = 0; i < values.Length; i++) values[i] = random.Next(10) == 0 ? 0f : (float)random.NextDouble() * 1e-3f;
            writer.WriteFloat32(values);
        }
        writer.Complete();
        return path;
    }

    /// <summary>Σ_k w_k F_k θ_k / max(Σ_k w_k F_k, ε) in float32, in model order (the method's definition).</summary>
    private static float[] FisherMean((float[] Theta, float[] Fisher)[] rows, float[] weights, float epsilon)
    {
        var result = new float[rows[0].Theta.Length];
        for (int i = 0; i < result.Length; i++)
        {
            float num = 0f, den = 0f;
            for (int k = 0; k < rows.Length; k++)
            {
                float f = weights[k] * rows[k].Fisher[i];
                num += f * rows[k].Theta[i];
                den += f;
            }
            result[i] = num / Math.Max(den, epsilon);
        }
        return result;
    }

    /// <summary>The row average the row map computes: summed in float32 in model order, then divided.</summary>
    private static float[] Average(float[] a, float[] b)
    {
        var result = new float[a.Length];
        for (int i = 0; i < a.Length; i++) result[i] = (a[i] + b[i]) / 2f;
        return result;
    }

    [Fact]
    public void Fisher_rows_are_permuted_with_the_rows_they_weigh()
    {
        string folder = TestPaths.NewTempDir();
        string b = Make(Path.Combine(folder, "base"), "lm-base", ["<|a|>"], seed: 1);
        string c = Make(Path.Combine(folder, "c"), "lm-ft-c", ["<|b|>", "<|s|>"], seed: 2);
        string p = Make(Path.Combine(folder, "py"), "lm-ft-python", ["<|s|>", "<|a|>"], seed: 3);
        string fb = WriteFisher(b, Path.Combine(folder, "base-fisher.safetensors"), 11);
        string fc = WriteFisher(c, Path.Combine(folder, "c-fisher.safetensors"), 12);
        string fp = WriteFisher(p, Path.Combine(folder, "py-fisher.safetensors"), 13);
        string yaml = $$"""
            models:
              - model: {{b}}
                parameters: {fisher: {{fb}}, weight: 1.0}
              - model: {{c}}
                parameters: {fisher: {{fc}}, weight: 0.5}
              - model: {{p}}
                parameters: {fisher: {{fp}}, weight: 2.0}
            merge_method: fisher
            dtype: float32
            tokenizer_source: union
            """;
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(RecipeParser.Parse(yaml, Path.Combine(folder, "recipe.yml")), new MergeOptions { OutputPath = output, Threads = 2 });

        float[] weights = [1f, 0.5f, 2f];
        foreach (string tensor in new[] { Embed, Head })
        {
            (float[], float[]) R(string model, string fisher, int row) => (Row(model, tensor, row), Row(fisher, tensor, row));
            (float[], float[]) Avg((float[] T, float[] F) x, (float[] T, float[] F) y) => (Average(x.T, y.T), Average(x.F, y.F));
            Assert.Equal(259, Rows(output, tensor));
            Assert.Equal(FisherMean([R(b, fb, 65), R(c, fc, 65), R(p, fp, 65)], weights, 1e-8f), Row(output, tensor, 65));
            // <|a|> (256): c lacks it and takes the base's row and the base's Fisher row; py has its own at 257.
            Assert.Equal(FisherMean([R(b, fb, 256), R(b, fb, 256), R(p, fp, 257)], weights, 1e-8f), Row(output, tensor, 256));
            // <|b|> (257): only in c: c's row and Fisher row in every model.
            Assert.Equal(FisherMean([R(c, fc, 256), R(c, fc, 256), R(c, fc, 256)], weights, 1e-8f), Row(output, tensor, 257));
            // <|s|> (258): the base lacks it: the average of c's and py's rows, and of their Fisher rows.
            Assert.Equal(FisherMean([Avg(R(c, fc, 257), R(p, fp, 256)), R(c, fc, 257), R(p, fp, 256)], weights, 1e-8f), Row(output, tensor, 258));
        }
    }

    [Fact]
    public void Rows_taken_from_a_model_without_a_fisher_tensor_are_refused_when_planning()
    {
        // The base is not merged (fisher merges the models listed): c's missing <|a|> comes from the base, which has no Fisher file.
        string folder = TestPaths.NewTempDir();
        string b = Make(Path.Combine(folder, "base"), "lm-base", ["<|a|>"], seed: 1);
        string c = Make(Path.Combine(folder, "c"), "lm-ft-c", ["<|b|>"], seed: 2);
        string p = Make(Path.Combine(folder, "py"), "lm-ft-python", ["<|a|>"], seed: 3);
        string fc = WriteFisher(c, Path.Combine(folder, "c-fisher.safetensors"), 12);
        string fp = WriteFisher(p, Path.Combine(folder, "py-fisher.safetensors"), 13);
        using var models = new ModelSet(folder);
        var e = Assert.Throws<RecipeException>(() => MergePlanner.Plan(RecipeParser.Parse($$"""
            models:
              - model: {{c}}
                parameters: {fisher: {{fc}}}
              - model: {{p}}
                parameters: {fisher: {{fp}}}
            base_model: {{b}}
            merge_method: fisher
            tokenizer_source: union
            """, "t.yml"), models));
        Assert.Contains($"come from {b} in the output vocabulary, but that model is not merged into", e.Message);
        Assert.Contains("so it has no fisher tensor to weigh them", e.Message);
    }
}
