using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Evaluation;

/// <summary><see cref="ModelDiff"/> on the zoo's fine-tunes, against sums computed here from the raw tensors.</summary>
public class ModelDiffTests
{
    [Theory]
    [InlineData("model.layers.3.self_attn.q_proj.weight", "model.layers.3")]
    [InlineData("model.layers.12.mlp.down_proj.weight", "model.layers.12")]
    [InlineData("model.embed_tokens.weight", "model.embed_tokens.weight")]
    [InlineData("lm_head.weight", "lm_head.weight")]
    public void Tensors_group_by_layer(string tensor, string layer) => Assert.Equal(layer, ModelDiff.LayerOf(tensor));

    [Fact]
    public void Task_vector_statistics_of_a_layer_match_a_direct_computation()
    {
        using var a = ModelFolder.Open(TestPaths.Model("lm-ft-c"));
        using var b = ModelFolder.Open(TestPaths.Model("lm-ft-python"));
        using var baseModel = ModelFolder.Open(TestPaths.Model("lm-base"));
        DiffResult result = ModelDiff.Compare(a, b, baseModel, perTensor: true);

        Assert.True(result.HasBase);
        Assert.Equal(["lm_head.weight", "model.embed_tokens.weight", "model.layers.0", "model.layers.1", "model.layers.2", "model.layers.3", "model.norm.weight"],
            result.Layers.Select(l => l.Name).Order(StringComparer.Ordinal));
        Assert.Equal(a.TensorNames.Count, result.Tensors.Count);

        string[] names = a.TensorNames.Where(n => n.StartsWith("model.layers.2.", StringComparison.Ordinal)).ToArray();
        DiffEntry layer = result.Layers.Single(l => l.Name == "model.layers.2");
        Assert.Equal(names.Length, layer.Tensors);
        double aa = 0, bb = 0, ab = 0, total = 0;
        long conflicts = 0, elements = 0;
        foreach (string name in names)
        {
            float[] x = Read(a, name), y = Read(b, name), z = Read(baseModel, name);
            for (int i = 0; i < x.Length; i++)
            {
                double ta = x[i] - z[i], tb = y[i] - z[i];
                aa += ta * ta;
                bb += tb * tb;
                ab += ta * tb;
                if (ta != 0 && tb != 0 && Math.Sign(ta) != Math.Sign(tb)) conflicts++;
            }

            elements += x.Length;
        }

        foreach (string name in a.TensorNames)
        {
            float[] x = Read(a, name), y = Read(b, name);
            for (int i = 0; i < x.Length; i++) total += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        }

        TaskVectorStats s = layer.Stats;
        Assert.Equal(elements, s.Elements);
        // τ is formed in float32 (as the merge methods do); float64 differences agree to float32 precision.
        Assert.Equal(Math.Sqrt(aa), s.NormA, 1e-5 * Math.Sqrt(aa));
        Assert.Equal(Math.Sqrt(bb), s.NormB, 1e-5 * Math.Sqrt(bb));
        Assert.Equal(ab / Math.Sqrt(aa * bb), s.Cosine, 1e-5);
        Assert.Equal((double)conflicts / elements, s.SignConflictRate, 1e-4);
        Assert.Equal(Math.Sqrt(total), result.Total.Stats.DifferenceNorm, 1e-5 * Math.Sqrt(total));
        Assert.Equal(3, s.Overlaps.Count);
    }

    [Fact]
    public void A_model_against_itself_has_no_difference()
    {
        using var a = ModelFolder.Open(TestPaths.Model("lm-ft-prose"));
        using var same = ModelFolder.Open(TestPaths.Model("lm-ft-prose"));
        DiffResult result = ModelDiff.Compare(a, same, null, perTensor: false);
        Assert.False(result.HasBase);
        Assert.Empty(result.Tensors);
        foreach (DiffEntry e in result.Layers)
        {
            Assert.Equal(0, e.Stats.DifferenceNorm);
            Assert.Equal(0, e.Stats.SignConflictRate);
            Assert.Equal(1, e.Stats.Cosine, 6);
            Assert.All(e.Stats.Overlaps, o => Assert.Equal(1.0, o.AInB));
        }
    }

    [Fact]
    public void Models_of_different_architectures_name_the_tensor()
    {
        using var a = ModelFolder.Open(TestPaths.Model("lm-base"));
        using var mlp = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        var e = Assert.Throws<InvalidModelFileException>(() => ModelDiff.Compare(a, mlp, null, perTensor: false));
        Assert.Contains("cannot compare", e.Message);
    }

    private static float[] Read(ModelFolder folder, string name)
    {
        ModelTensor t = folder.GetTensor(name);
        var values = new float[t.ElementCount];
        t.ReadFloat32(0, values);
        return values;
    }
}
