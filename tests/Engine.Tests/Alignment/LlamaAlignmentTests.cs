using Weld.Engine.Alignment;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.Tests.Evaluation;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Alignment;

/// <summary>Permutation symmetry of the zoo's Llama decoders: residual stream, MLP units and attention heads.</summary>
public class LlamaAlignmentTests
{
    private static readonly PerplexityOptions s_shortEval = new() { Bytes = 4096 };

    private static PermutationSpec SpecOf(ModelFolder model) => PermutationSpec.ForLlama(LlamaConfig.FromModelConfig(model.Config!));

    [Fact]
    public void Spec_covers_every_matrix_and_norm_of_lm_base()
    {
        using var folder = ModelFolder.Open(TestPaths.Model("lm-base"));
        PermutationSpec spec = SpecOf(folder);
        Assert.Equal("residual", spec.Groups[0].Name);
        Assert.Equal(128, spec.Groups[0].Size);
        // Every tensor of the decoder carries the residual permutation on one axis.
        foreach (string name in folder.TensorNames)
        {
            int[]? groups = spec.GroupsOf(name);
            Assert.True(groups is not null && (groups[0] == 0 || groups[1] == 0), $"{name} does not follow the residual stream");
        }

        spec.Validate(TensorSet.Load(folder));
    }

    [Fact]
    public void Randomly_permuted_lm_base_keeps_its_perplexity_and_maps_back_exactly()
    {
        using var original = ModelFolder.Open(TestPaths.Model("lm-base"));
        PermutationSpec spec = SpecOf(original);
        var random = new Random(2024);
        var permutations = new int[spec.Groups.Count][];
        for (int g = 0; g < permutations.Length; g++) permutations[g] = RandomAdmissible(spec.Groups[g], random);
        // The check below must see whole key/value groups move, not only heads within a group.
        int attention = spec.Groups.ToList().FindIndex(group => group.Name == "attn.0");
        permutations[attention] = [2, 3, 1, 0];

        string dir = TestPaths.NewTempDir();
        string permutedPath = Path.Combine(dir, "permuted");
        PermutedModelWriter.Write(original, spec, permutations, permutedPath, overwrite: false);
        using var permuted = ModelFolder.Open(permutedPath);
        TensorSet a = TensorSet.Load(original), p = TensorSet.Load(permuted);
        Assert.False(a.Get("model.layers.0.mlp.up_proj.weight").AsSpan().SequenceEqual(p.Get("model.layers.0.mlp.up_proj.weight")));
        // Layer 0's key heads swapped places (query heads [2, 3] read key/value head 1): head 0 of k is old head 1.
        float[] kA = a.Get("model.layers.0.self_attn.k_proj.weight"), kP = p.Get("model.layers.0.self_attn.k_proj.weight");
        int[] residualOrder = permutations[0];
        for (int e = 0; e < 32; e++)
            for (int c = 0; c < 128; c++) Assert.Equal(kA[(32 + e) * 128 + residualOrder[c]], kP[e * 128 + c]);

        // Same function: perplexity agrees up to float32 summation order.
        string text = ReferenceMetrics.Text("python");
        double before = PerplexityEvaluator.EvaluateFile(LlamaModel.Load(original), ByteTokenizer.Instance, text, s_shortEval).Perplexity;
        double after = PerplexityEvaluator.EvaluateFile(LlamaModel.Load(permuted), ByteTokenizer.Instance, text, s_shortEval).Perplexity;
        Assert.True(Math.Abs(after - before) <= 1e-5 * before, $"perplexity {before:R} before, {after:R} after permuting");

        WeightMatchingResult result = WeightMatching.Run(spec, a, p, seed: 1);
        Assert.True(result.Converged);
        string backPath = Path.Combine(dir, "back");
        PermutedModelWriter.Write(permuted, spec, result.Permutations, backPath, overwrite: false);
        Assert.Equal(File.ReadAllBytes(Path.Combine(original.Path, "model.safetensors")), File.ReadAllBytes(Path.Combine(backPath, "model.safetensors")));
    }

    [Fact]
    public void A_head_permutation_that_splits_a_key_value_group_is_refused()
    {
        using var original = ModelFolder.Open(TestPaths.Model("lm-base"));
        PermutationSpec spec = SpecOf(original);
        PermutationGroup heads = spec.Groups[1];
        Assert.Equal("attn.0", heads.Name);
        Assert.Equal(2, heads.GroupSize);
        Assert.True(heads.Admits([3, 2, 0, 1]));
        Assert.False(heads.Admits([1, 2, 0, 3])); // query heads 0 and 2 would read different key/value heads than before
        var permutations = new int[spec.Groups.Count][];
        for (int g = 0; g < permutations.Length; g++) permutations[g] = [.. Enumerable.Range(0, spec.Groups[g].Size)];
        permutations[1] = [1, 2, 0, 3];
        string output = Path.Combine(TestPaths.NewTempDir(), "bad");
        var e = Assert.Throws<WeldException>(() => PermutedModelWriter.Write(original, spec, permutations, output, overwrite: false));
        Assert.Contains("attn.0", e.Message);
        Assert.False(Directory.Exists(output));
    }

    /// <summary>A uniformly random permutation that keeps the group's unit groups together.</summary>
    private static int[] RandomAdmissible(PermutationGroup group, Random random)
    {
        int[] order = [.. Enumerable.Range(0, group.UnitGroups)];
        random.Shuffle(order);
        var permutation = new int[group.Size];
        for (int g = 0; g < group.UnitGroups; g++)
        {
            int[] within = [.. Enumerable.Range(0, group.GroupSize)];
            random.Shuffle(within);
            for (int t = 0; t < group.GroupSize; t++) permutation[g * group.GroupSize + t] = order[g] * group.GroupSize + within[t];
        }

        return permutation;
    }

    [Fact]
    public void Sharded_f16_model_is_written_with_its_shards_and_index()
    {
        using var sharded = ModelFolder.Open(TestPaths.Model("lm-ft-c-sharded"));
        PermutationSpec spec = SpecOf(sharded);
        var identity = new int[spec.Groups.Count][];
        for (int g = 0; g < identity.Length; g++)
        {
            identity[g] = new int[spec.Groups[g].Size];
            for (int i = 0; i < identity[g].Length; i++) identity[g][i] = i;
        }

        string output = Path.Combine(TestPaths.NewTempDir(), "copy");
        PermutedModelWriter.Write(sharded, spec, identity, output, overwrite: false);
        // The identity permutation reproduces every file byte for byte.
        foreach (string name in (string[])["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json", "config.json"])
            Assert.Equal(File.ReadAllBytes(Path.Combine(sharded.Path, name)), File.ReadAllBytes(Path.Combine(output, name)));
    }
}
