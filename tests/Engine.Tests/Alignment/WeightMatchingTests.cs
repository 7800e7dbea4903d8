using Weld.Engine.Alignment;
using Weld.Engine.Evaluation;
using Weld.Engine.Models;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;
using Xunit.Abstractions;

namespace Weld.Engine.Tests.Alignment;

/// <summary>Weight matching on the zoo's digits MLPs.</summary>
public class WeightMatchingTests(ITestOutputHelper output)
{
    private static ClassificationData Digits => ClassificationData.Load(Path.Combine(TestPaths.SharedModels, "data", "digits.safetensors"));

    [Fact]
    public void Mlp_spec_has_one_group_per_hidden_layer()
    {
        using var a = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        PermutationSpec spec = PermutationSpec.ForMlp(a.Config!);
        Assert.Equal(2, spec.Groups.Count);
        Assert.Equal(256, spec.Groups[0].Size);
        Assert.Equal([new("layers.0.weight", 0), new("layers.0.bias", 0), new("layers.1.weight", 1)], spec.Groups[0].Axes);
        Assert.Equal([new("layers.1.weight", 0), new("layers.1.bias", 0), new("layers.2.weight", 1)], spec.Groups[1].Axes);
        Assert.Equal([1, 0], spec.GroupsOf("layers.1.weight")!); // rows: hidden.1, columns: hidden.0
        Assert.Null(spec.GroupsOf("layers.2.bias"));
    }

    [Fact]
    public void Permuted_copy_maps_back_bit_identically_and_the_writer_reproduces_the_file()
    {
        using var a = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        using var permuted = ModelFolder.Open(TestPaths.Model("mlp-digits-a-permuted"));
        PermutationSpec spec = PermutationSpec.ForMlp(a.Config!);
        TensorSet setA = TensorSet.Load(a), setP = TensorSet.Load(permuted);
        // The copy really is permuted: its hidden weights differ from a's.
        Assert.False(setA.Get("layers.0.weight").AsSpan().SequenceEqual(setP.Get("layers.0.weight")));

        WeightMatchingResult result = WeightMatching.Run(spec, setA, setP, seed: 7);
        Assert.True(result.Converged);
        TensorSet aligned = WeightMatching.Apply(spec, setP, result.Permutations);
        foreach (string name in setA.Names)
            Assert.True(BitsEqual(setA.Get(name), aligned.Get(name)), $"tensor {name} differs after alignment");
        // The objective never falls and ends at ‖A‖² over the permuted tensors.
        for (int i = 1; i < result.Objectives.Count; i++) Assert.True(result.Objectives[i] >= result.Objectives[i - 1]);
        double normSquared = 0;
        foreach (string name in spec.PermutedTensors)
            foreach (float x in setA.Get(name)) normSquared += (double)x * x;
        Assert.Equal(normSquared, result.Objectives[^1], 6);

        string dir = TestPaths.NewTempDir();
        string outPath = Path.Combine(dir, "aligned");
        PermutedModelWriter.Write(permuted, spec, result.Permutations, outPath, overwrite: false);
        // Same header, same metadata, same tensor bytes: the written file equals mlp-digits-a's byte for byte.
        Assert.Equal(File.ReadAllBytes(Path.Combine(a.Path, "model.safetensors")), File.ReadAllBytes(Path.Combine(outPath, "model.safetensors")));
        Assert.Equal(File.ReadAllText(Path.Combine(permuted.Path, "config.json")), File.ReadAllText(Path.Combine(outPath, "config.json")));
    }

    [Fact]
    public void Alignment_keeps_the_function_and_lowers_the_barrier()
    {
        using var a = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        using var b = ModelFolder.Open(TestPaths.Model("mlp-digits-b"));
        PermutationSpec spec = PermutationSpec.ForMlp(a.Config!);
        TensorSet setA = TensorSet.Load(a), setB = TensorSet.Load(b);
        WeightMatchingResult result = WeightMatching.Run(spec, setA, setB, seed: 0,
            onIteration: (i, objective) => output.WriteLine($"iteration {i}: objective {objective:R}"));
        Assert.True(result.Converged);
        Assert.True(result.Objectives[^1] > result.Objectives[0]);
        foreach (int[] p in result.Permutations) Assert.True(TensorPermuter.IsPermutation(p));
        TensorSet aligned = WeightMatching.Apply(spec, setB, result.Permutations);

        // Same function: logits of every test sample agree with the unaligned model's.
        ClassificationData data = Digits;
        float[] before = new MlpClassifier(b.Config!, setB).Forward(data.Inputs, data.Samples);
        float[] after = new MlpClassifier(b.Config!, aligned).Forward(data.Inputs, data.Samples);
        for (int i = 0; i < before.Length; i++) Assert.True(Math.Abs(before[i] - after[i]) <= 1e-4f * (1 + Math.Abs(before[i])), $"logit {i}: {before[i]} vs {after[i]}");

        (double Loss, double Metric) Evaluate(TensorSet set)
        {
            ClassificationResult r = new MlpClassifier(a.Config!, set).Evaluate(data);
            return (r.MeanLoss, r.Accuracy);
        }

        InterpolationCurve naive = LossInterpolation.Scan(setA, setB, 11, Evaluate);
        InterpolationCurve rebased = LossInterpolation.Scan(setA, aligned, 11, Evaluate);
        output.WriteLine($"barrier before alignment {naive.BarrierHeight:F4} nats (midpoint loss {naive.Points[5].Loss:F4}, accuracy {naive.Points[5].Metric:F4})");
        output.WriteLine($"barrier after alignment  {rebased.BarrierHeight:F4} nats (midpoint loss {rebased.Points[5].Loss:F4}, accuracy {rebased.Points[5].Metric:F4})");
        Assert.True(rebased.BarrierHeight < naive.BarrierHeight, $"barrier {rebased.BarrierHeight} after vs {naive.BarrierHeight} before");
    }

    [Fact]
    public void Seed_changes_only_the_visiting_order_and_results_are_deterministic()
    {
        using var a = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        using var b = ModelFolder.Open(TestPaths.Model("mlp-digits-b"));
        PermutationSpec spec = PermutationSpec.ForMlp(a.Config!);
        TensorSet setA = TensorSet.Load(a), setB = TensorSet.Load(b);
        WeightMatchingResult first = WeightMatching.Run(spec, setA, setB, seed: 3);
        WeightMatchingResult second = WeightMatching.Run(spec, setA, setB, seed: 3);
        Assert.Equal(first.Objectives, second.Objectives);
        for (int g = 0; g < spec.Groups.Count; g++) Assert.Equal(first.Permutations[g], second.Permutations[g]);
        WeightMatchingResult capped = WeightMatching.Run(spec, setA, setB, seed: 3, maxIterations: 1);
        Assert.Equal(1, capped.Iterations);
    }

    [Fact]
    public void Missing_or_misshapen_tensors_are_reported_by_name()
    {
        using var a = ModelFolder.Open(TestPaths.Model("mlp-digits-a"));
        PermutationSpec spec = PermutationSpec.ForMlp(a.Config!);
        TensorSet setA = TensorSet.Load(a);
        var broken = new TensorSet("broken-model");
        foreach (string name in setA.Names)
            if (name != "layers.1.bias") broken.Set(name, setA.GetShape(name), setA.Get(name));
        var e = Assert.Throws<InvalidModelFileException>(() => WeightMatching.Run(spec, setA, broken));
        Assert.Contains("layers.1.bias", e.Message);
        Assert.Contains("broken-model", e.Message);
        broken.Set("layers.1.bias", [255], new float[255]);
        e = Assert.Throws<InvalidModelFileException>(() => WeightMatching.Run(spec, setA, broken));
        Assert.Contains("layers.1.bias", e.Message);
        Assert.Contains("256", e.Message);
    }

    private static bool BitsEqual(float[] x, float[] y) =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(x.AsSpan()).SequenceEqual(System.Runtime.InteropServices.MemoryMarshal.AsBytes(y.AsSpan()));
}
