using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Execution;

/// <summary>
/// DARE's drop done by the loader while it decodes the task vectors (<see cref="Methods.IDropsWhileDecoding"/>) must
/// give the bytes of the method's own drop pass over the decoded rows (the <c>DropInDecode</c> seam off): every rescale
/// mode, a model at density 1, bf16 and f16 inputs, one thread and all, whole tensors and streamed ones.
/// </summary>
public class DropInDecodeTests
{
    private const string Models = """
        models:
          - model: {zoo}/lm-ft-prose
            parameters: {weight: 0.5, density: 0.3}
          - model: {zoo}/lm-ft-c-sharded
            parameters: {weight: 0.3, density: 0.6}
          - model: {zoo}/lm-ft-python
            parameters: {weight: 0.4, density: DENSITY}
        base_model: {zoo}/lm-base
        """ + "\n";

    [Theory]
    [InlineData("dare_ties", "0.45", "")] // mergekit's L1 rescale: the norms come from the decode's partials
    [InlineData("dare_ties", "0.45", "rescale_norm: inverse_density")] // kept entries divided in the decode
    [InlineData("dare_ties", "1.0", "rescale: false, consensus: count, disjoint_mean: count")]
    [InlineData("dare_linear", "0.45", "normalize: true, lambda: 0.8")]
    [InlineData("dare_linear", "1.0", "rescale_norm: inverse_density")]
    public void Zoo_merges_give_the_bytes_of_the_methods_own_drop(string method, string density, string global)
    {
        // lm-ft-c-sharded is stored as f16: its rows take the drop after the conversion (DecodeDrop.Apply).
        MergeRecipe recipe = RecipeHarness.Recipe(Models.Replace("DENSITY", density) + $"merge_method: {method}\nparameters: {{ {global} }}\n");
        byte[] reference = Merge(recipe, dropInDecode: false, threads: -1, memoryLimit: 1_000_000_000);
        foreach (int threads in new[] { 1, -1 })
        {
            byte[] actual = Merge(recipe, dropInDecode: true, threads, memoryLimit: 1_000_000_000);
            Assert.True(reference.AsSpan().SequenceEqual(actual), $"{method} {global}, {threads} threads: the drop in the decode changed the output");
        }
    }

    /// <summary>
    /// A bf16 tensor of three 2^20 blocks and a tail (the norm partials of 37 chunks added block by block), merged whole
    /// and streamed in 2^20-element chunks (the L1 norms from the statistics pass, the apply pass dropping without them).
    /// </summary>
    [Theory]
    [InlineData("dare_ties", "")]
    [InlineData("dare_linear", "rescale_norm: inverse_density")]
    public void Synthetic_tensors_whole_and_streamed_give_the_bytes_of_the_methods_own_drop(string method, string global)
    {
        string folder = SyntheticModels(3 * (1 << 20) + 12_345);
        MergeRecipe recipe = RecipeParser.Parse($$"""
            models:
              - model: {{folder}}/a
                parameters: {weight: 0.5, density: 0.3}
              - model: {{folder}}/b
                parameters: {weight: 0.6, density: 0.7}
            base_model: {{folder}}/base
            merge_method: {{method}}
            parameters: { {{global}} }
            """, "synthetic.yml");
        byte[] reference = Merge(recipe, dropInDecode: false, threads: -1, memoryLimit: 500_000_000);
        Assert.True(reference.AsSpan().SequenceEqual(Merge(recipe, dropInDecode: true, threads: -1, memoryLimit: 500_000_000)), $"{method}: whole tensor");
        Assert.True(reference.AsSpan().SequenceEqual(Merge(recipe, dropInDecode: true, threads: 1, memoryLimit: 30_000_000)), $"{method}: streamed, one thread");
        Assert.True(reference.AsSpan().SequenceEqual(Merge(recipe, dropInDecode: true, threads: -1, memoryLimit: 30_000_000)), $"{method}: streamed, all threads");
    }

    private static byte[] Merge(MergeRecipe recipe, bool dropInDecode, int threads, long memoryLimit)
    {
        string output = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(recipe, new MergeOptions
        {
            OutputPath = output, Threads = threads, MemoryLimitBytes = memoryLimit, Seed = 11, DropInDecode = dropInDecode,
        });
        return RecipeHarness.TensorFileBytes(output);
    }

    /// <summary>A base and two bf16 fine-tunes of it: one large tensor and one small one.</summary>
    private static string SyntheticModels(int length)
    {
        string folder = TestPaths.NewTempDir();
        var random = new Random(5);
        var baseValues = new float[length];
        for (int i = 0; i < length; i++) baseValues[i] = (float)(random.NextDouble() - 0.5);
        foreach (string model in new[] { "base", "a", "b" })
        {
            Directory.CreateDirectory(Path.Combine(folder, model));
            TensorHeader[] headers = [new("big.weight", DType.BF16, [length]), new("small.weight", DType.BF16, [5, 7])];
            using var writer = new SafeTensorsWriter(Path.Combine(folder, model, "model.safetensors"), headers, null);
            var values = (float[])baseValues.Clone();
            if (model != "base")
                for (int i = 0; i < length; i++) values[i] += (float)(0.01 * (random.NextDouble() - 0.5));
            writer.WriteFloat32(values);
            writer.WriteFloat32(values.AsSpan(0, 35));
            writer.Complete();
        }
        return folder;
    }
}
