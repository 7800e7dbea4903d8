using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// magmax, ram and nearswap declare themselves elementwise, so the executor cuts their tensors into chunks under a
/// small memory limit: the output must keep the bytes of the whole-tensor merge.
/// </summary>
public class ElementwiseChunkingTests
{
    // 2.2M elements: two whole chunks of TensorMergeInputs.ChunkAlignment (1M) and a ragged tail.
    private const int Rows = 1100, Columns = 2000;

    private static string WriteModel(string folder, string name, float[] values)
    {
        string path = Path.Combine(folder, name);
        Directory.CreateDirectory(path);
        var header = new TensorHeader("big.weight", DType.F32, [Rows, Columns]);
        using var writer = new SafeTensorsWriter(Path.Combine(path, "model.safetensors"), [header], null);
        writer.WriteFloat32(values);
        writer.Complete();
        return path;
    }

    [Theory]
    [InlineData("magmax", "lambda: 0.7", 3, 24_000_000)]
    [InlineData("ram", "epsilon: 0.004", 3, 24_000_000)]
    [InlineData("nearswap", "t: 0.003", 1, 14_000_000)]
    public void Chunked_merge_has_the_bytes_of_the_whole_tensor_merge(string method, string global, int models, long limit)
    {
        string folder = TestPaths.NewTempDir();
        var random = new Random(11);
        float[] baseline = MethodHarness.RandomTensor(random, Rows * Columns, 0.05f, bf16: false);
        string basePath = WriteModel(folder, "base", baseline);
        var lines = new List<string>();
        for (int k = 0; k < models; k++)
        {
            float[] tuned = (float[])baseline.Clone();
            for (int i = 0; i < tuned.Length; i++)
                if (random.Next(4) != 0) tuned[i] += (float)(random.NextDouble() - 0.5) * 0.01f; // some untouched entries
            lines.Add($"  - model: {WriteModel(folder, "m" + k, tuned)}");
        }
        MergeRecipe recipe = RecipeParser.Parse($"""
            models:
            {string.Join("\n", lines)}
            merge_method: {method}
            base_model: {basePath}
            parameters:
              {global}
            dtype: float32
            """, method + ".yml");

        string whole = Path.Combine(TestPaths.NewTempDir(), "out"), chunked = Path.Combine(TestPaths.NewTempDir(), "out");
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole });
        var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = chunked, MemoryLimitBytes = limit });

        // The whole tensor's buffers (inputs, base, output) exceed the limit, which the run kept: it was cut.
        Assert.True((models + 2L) * Rows * Columns * sizeof(float) > limit);
        Assert.True(summary.PeakBufferBytes <= limit, "the memory limit was exceeded");
        Assert.True(File.ReadAllBytes(Path.Combine(whole, "model.safetensors")).AsSpan()
            .SequenceEqual(File.ReadAllBytes(Path.Combine(chunked, "model.safetensors"))), method);
    }
}
