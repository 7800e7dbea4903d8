using Weld.Tests;
using Xunit;

namespace Weld.Cli.Tests;

/// <summary>Output bytes depend on the recipe and the seed only: not on the thread count, not on the run.</summary>
public sealed class DeterminismTests
{
    [Theory]
    [InlineData("dare-ties.yml")]
    [InlineData("ties.yml")]
    [InlineData("breadcrumbs.yml")]
    public void ThreadCount_DoesNotChangeTheBytes(string example)
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample(example, temp);

        byte[] one = Merge(recipe, Path.Combine(temp, "j1"), "-j", "1", "--random-seed", "7");
        byte[] four = Merge(recipe, Path.Combine(temp, "j4"), "-j", "4", "--random-seed", "7");

        Assert.Equal(one, four);
    }

    /// <summary>
    /// The zoo's tensors are far below the smallest --memory-limit (16M), so these models carry one 3003 × 1000 bf16
    /// tensor: its five float32 buffers (60 MB) exceed half of a 24M budget, so it is streamed in 2²⁰-element chunks
    /// (statistics passes + an apply pass; rows of 1000 straddle every chunk boundary). The bytes must not change.
    /// </summary>
    [Theory]
    [InlineData("breadcrumbs", "{weight: 0.5, density: 0.6, gamma: 0.05}", "")]
    [InlineData("breadcrumbs_ties", "{weight: 0.5, density: 0.5, gamma: 0.02}", "rescale: true")]
    [InlineData("breadcrumbs_paper", "{weight: 0.5, beta: 0.6, gamma: 0.05}", "")]
    [InlineData("della", "{weight: 0.5, density: 0.4, epsilon: 0.1}", "")]
    [InlineData("della_linear", "{weight: 0.5, density: 0.5, epsilon: 0.2}", "rescale_norm: inverse_density")]
    [InlineData("sce", "{}", "select_topk: 0.4")]
    [InlineData("slerp", "{}", "t: 0.4", "a")]
    [InlineData("nuslerp", "{weight: 0.5}", "", "a b")]
    [InlineData("nuslerp", "{weight: 0.5}", "nuslerp_flatten: false", "a b")]
    [InlineData("multislerp", "{weight: 0.3}", "")]
    [InlineData("karcher", "{}", "", "a b c", false)]
    [InlineData("model_stock", "{}", "")]
    [InlineData("model_stock", "{}", "filter_wise: true")]
    public void TinyMemoryLimit_StreamsWithTheSameBytes(string method, string modelParameters, string global, string inputs = "a b c", bool withBase = true)
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string[] names = ["base", "a", "b", "c"];
        var random = new Random(23);
        var baseValues = new float[3003 * 1000];
        for (int i = 0; i < baseValues.Length; i++) baseValues[i] = (float)(random.NextDouble() - 0.5);
        foreach (string name in names)
        {
            Directory.CreateDirectory(Path.Combine(temp, name));
            using var writer = new Weld.Engine.SafeTensors.SafeTensorsWriter(Path.Combine(temp, name, "model.safetensors"),
                [new Weld.Engine.SafeTensors.TensorHeader("big.weight", Weld.Engine.SafeTensors.DType.BF16, [3003, 1000])], null);
            var values = (float[])baseValues.Clone();
            if (name != "base")
                for (int i = 0; i < values.Length; i++) values[i] += (float)(0.01 * (random.NextDouble() - 0.5));
            writer.WriteFloat32(values);
            writer.Complete();
        }
        string models = string.Concat(inputs.Split(' ').Select(n => $"  - model: {Path.Combine(temp, n)}\n    parameters: {modelParameters}\n"));
        string baseModel = withBase ? $"base_model: {Path.Combine(temp, "base")}\n" : "";
        string recipe = Recipes.Write(temp, $"models:\n{models}{baseModel}merge_method: {method}\nparameters: {{ {global} }}\n");

        var dryRun = WeldCli.Run(["merge", recipe, "-o", Path.Combine(temp, "dry"), "--dry-run", "--memory-limit", "24M"]);
        CliAssert.Succeeded(dryRun);
        Assert.Contains("are merged in chunks, reading them again for each statistics pass", dryRun.Stdout);

        byte[] whole = Merge(recipe, Path.Combine(temp, "whole"), "--random-seed", "7", "--memory-limit", "1B");
        byte[] streamed = Merge(recipe, Path.Combine(temp, "streamed"), "--random-seed", "7", "--memory-limit", "24M", "-j", "1");

        Assert.Equal(whole, streamed);
    }

    [Fact]
    public void DareSeed_SameSeedSameBytes_OtherSeedOtherBytes()
    {
        string temp = TestPaths.NewTempDir("weld-cli");
        string recipe = Recipes.WriteExample("dare-ties.yml", temp);

        byte[] first = Merge(recipe, Path.Combine(temp, "a"), "--random-seed", "7");
        byte[] again = Merge(recipe, Path.Combine(temp, "b"), "--random-seed", "7");
        byte[] other = Merge(recipe, Path.Combine(temp, "c"), "--random-seed", "8");

        Assert.Equal(first, again);
        Assert.Equal(first.Length, other.Length);
        Assert.NotEqual(first, other);
        // Not just a header difference: most tensors' data must change with the mask.
        Dictionary<string, float[]> a = ModelFiles.ReadAll(Path.Combine(temp, "a"));
        Dictionary<string, float[]> c = ModelFiles.ReadAll(Path.Combine(temp, "c"));
        int changed = a.Count(kv => !ModelFiles.Bits(kv.Value).AsSpan().SequenceEqual(ModelFiles.Bits(c[kv.Key])));
        Assert.True(changed >= 30, $"only {changed} of 39 tensors differ between seeds 7 and 8");
    }

    private static byte[] Merge(string recipe, string output, params string[] flags)
    {
        CliAssert.Succeeded(WeldCli.Run(["merge", recipe, "-o", output, "-q", .. flags]));
        return File.ReadAllBytes(Path.Combine(output, "model.safetensors"));
    }
}
