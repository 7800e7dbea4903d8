using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Weld.Engine.Tests.Merging;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Execution;

/// <summary>Bounded memory, chunking, resume and parts: all must give the bytes of one plain run.</summary>
public class StreamingTests
{
    private const string Ties = """
        models:
          - model: {zoo}/lm-ft-prose
            parameters: {weight: 0.5, density: 0.4}
          - model: {zoo}/lm-ft-c
            parameters: {weight: 0.5, density: 0.4}
          - model: {zoo}/lm-ft-python
            parameters: {weight: 0.5, density: 0.4}
        base_model: {zoo}/lm-base
        merge_method: ties
        """;

    private static Dictionary<string, byte[]> Files(string folder) =>
        Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f), File.ReadAllBytes);

    private static string Output() => Path.Combine(TestPaths.NewTempDir(), "out");

    [Fact]
    public void Parts_assembled_by_finalize_equal_a_single_run_byte_for_byte()
    {
        MergeRecipe recipe = RecipeHarness.Recipe(Ties);
        string single = Output();
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = single, MaxShardBytes = 250_000 });

        string parted = Output();
        var written = new List<string>();
        for (int i = 1; i <= 3; i++)
        {
            var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = parted, MaxShardBytes = 250_000, Part = new PartSelection(i, 3) });
            Assert.NotEmpty(summary.ShardsWritten);
            written.AddRange(summary.ShardsWritten);
            Assert.False(Directory.Exists(parted)); // nothing looks complete before finalize
        }
        Assert.Equal(written.Count, written.Distinct().Count()); // each shard computed by exactly one part
        MergeRunner.Finalize(parted);

        var expected = Files(single);
        var actual = Files(parted);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        Assert.True(expected.Count > 6);
        foreach (var (name, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), name);
    }

    [Fact]
    public void Finalize_refuses_missing_parts()
    {
        MergeRecipe recipe = RecipeHarness.Recipe(Ties);
        string parted = Output();
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = parted, MaxShardBytes = 250_000, Part = new PartSelection(2, 3) });
        var error = Assert.Throws<WeldException>(() => MergeRunner.Finalize(parted));
        Assert.Contains("1/3, 3/3 have not run", error.Message);
        Assert.False(Directory.Exists(parted));
    }

    [Fact]
    public void Resume_after_an_interruption_reuses_finished_shards_and_gives_the_same_bytes()
    {
        MergeRecipe recipe = RecipeHarness.Recipe(Ties);
        string reference = Output();
        var full = MergeRunner.Run(recipe, new MergeOptions { OutputPath = reference, MaxShardBytes = 250_000 });

        string output = Output();
        using (var cancel = new CancellationTokenSource())
        {
            var progress = new SyncProgress(p => { if (p.TensorsDone == 20) cancel.Cancel(); });
            Assert.ThrowsAny<OperationCanceledException>(() =>
                MergeRunner.Run(recipe, new MergeOptions { OutputPath = output, MaxShardBytes = 250_000 }, progress, null, cancel.Token));
        }
        Assert.False(Directory.Exists(output));
        var resumed = MergeRunner.Run(recipe, new MergeOptions { OutputPath = output, MaxShardBytes = 250_000, Resume = true });
        Assert.True(resumed.ShardsWritten.Count < full.ShardsWritten.Count, "resume recomputed every shard");
        Assert.True(resumed.ShardsWritten.Count > 0);

        var expected = Files(reference);
        var actual = Files(output);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, bytes) in expected) Assert.True(bytes.AsSpan().SequenceEqual(actual[name]), name);
    }

    [Fact]
    public void Resume_with_a_changed_recipe_starts_again()
    {
        string output = Output();
        using (var cancel = new CancellationTokenSource())
        {
            var progress = new SyncProgress(p => { if (p.TensorsDone == 20) cancel.Cancel(); });
            Assert.ThrowsAny<OperationCanceledException>(() => MergeRunner.Run(RecipeHarness.Recipe(Ties),
                new MergeOptions { OutputPath = output, MaxShardBytes = 250_000 }, progress, null, cancel.Token));
        }
        var logs = new List<string>();
        var changed = RecipeHarness.Recipe(Ties.Replace("density: 0.4", "density: 0.5"));
        var summary = MergeRunner.Run(changed, new MergeOptions { OutputPath = output, MaxShardBytes = 250_000, Resume = true }, null, logs.Add);
        Assert.Equal(summary.Shards.Count, summary.ShardsWritten.Count);
        Assert.Contains(logs, l => l.Contains("plan changed"));
    }

    [Fact]
    public void The_memory_limit_is_respected_and_a_tensor_that_cannot_fit_is_named()
    {
        MergeRecipe recipe = RecipeHarness.Recipe(Ties);
        // Largest tensor: 384 × 128 elements, 3 models + base + output = 5 float32 rows = 983,040 bytes.
        var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = Output(), MemoryLimitBytes = 1_200_000 });
        Assert.InRange(summary.PeakBufferBytes, 983_040, 1_200_000);

        // TIES streams large tensors, but not below one chunk.
        var error = Assert.Throws<WeldException>(() =>
            MergeRunner.Run(recipe, new MergeOptions { OutputPath = Output(), MemoryLimitBytes = 900_000 }));
        Assert.Contains("tensor model.", error.Message);
        Assert.Contains("raise --memory-limit", error.Message);

        // TSV's SVDs need the whole tensor.
        MergeRecipe stock = RecipeHarness.Recipe("""
            models:
              - model: {zoo}/lm-ft-prose
              - model: {zoo}/lm-ft-c
            base_model: {zoo}/lm-base
            merge_method: tsv
            """);
        error = Assert.Throws<WeldException>(() =>
            MergeRunner.Run(stock, new MergeOptions { OutputPath = Output(), MemoryLimitBytes = 600_000 }));
        Assert.Contains("needs the whole tensor in memory", error.Message);
    }

    /// <summary>A base and three fine-tunes (bf16, so many equal magnitudes) with a 3,003,000-element tensor.</summary>
    private static string SyntheticTaskModels() => SyntheticTaskModels([3003, 1000]);

    /// <summary>A base and three fine-tunes with a tensor of shape <paramref name="bigShape"/> (and a small one).</summary>
    private static string SyntheticTaskModels(long[] bigShape)
    {
        string folder = TestPaths.NewTempDir();
        var random = new Random(11);
        var baseValues = new float[bigShape.Aggregate(1L, (a, b) => a * b)];
        for (int i = 0; i < baseValues.Length; i++) baseValues[i] = (float)(random.NextDouble() - 0.5);
        foreach (string m in new[] { "base", "a", "b", "c" })
        {
            Directory.CreateDirectory(Path.Combine(folder, m));
            TensorHeader[] headers = [new("big.weight", DType.BF16, bigShape), new("small.weight", DType.BF16, [7, 9])];
            using var writer = new SafeTensorsWriter(Path.Combine(folder, m, "model.safetensors"), headers, null);
            var values = (float[])baseValues.Clone();
            if (m != "base")
                for (int i = 0; i < values.Length; i++) values[i] += (float)(0.01 * (random.NextDouble() - 0.5));
            writer.WriteFloat32(values);
            writer.WriteFloat32(values.AsSpan(0, 63));
            writer.Complete();
        }
        return folder;
    }

    [Theory]
    [InlineData("ties", "{weight: 0.5, density: 0.3}", "", 1)] // one counting pass for the top-k cut (the sample brackets it)
    [InlineData("ties", "{weight: 0.7, density: 0.2}", "rescale: true", 2)] // + the L1 norm of the trimmed vector
    [InlineData("dare_ties", "{weight: 0.5, density: 0.4}", "", 1)] // L1 norms before and after the drop
    [InlineData("dare_linear", "{weight: 0.6, density: 0.5}", "rescale_norm: inverse_density", 0)] // elementwise
    [InlineData("task_arithmetic", "{weight: 0.6}", "lambda: 0.8", 0)]
    [InlineData("breadcrumbs_ties", "{weight: 0.5, density: 0.6, gamma: 0.05}", "", 2)] // both cuts of the band
    [InlineData("breadcrumbs", "{weight: 0.5, density: 0.7}", "rescale: true", 3)] // + the L1 norm of the band
    [InlineData("della", "{weight: 0.5, density: 0.4, epsilon: 0.1}", "", 2)] // rows cut by chunk boundaries + L1 norms
    [InlineData("della_linear", "{weight: 0.5, density: 0.5}", "rescale_norm: inverse_density", 1)]
    [InlineData("sce", "{}", "", 1)] // Σ δ² per model
    [InlineData("sce", "{}", "select_topk: 0.4", 2)] // nonzero variances with the sampled variance cut, Σ δ²
    [InlineData("ramplus_tl", "{}", "r: 0.3, alpha: 100, epsilon: 0.002", 1)] // shared and unique counts (ρ ≈ 5, below α: the counts set λ)
    [InlineData("divergence_weights", "{}", "temperature: 0.5, lambda: 0.9", 1)] // Σ τ̄², Σ τ_k², Σ τ_k·τ̄
    public void Streamed_methods_merge_tensors_larger_than_the_limit_with_the_same_bytes(string method, string modelParameters, string global, int statisticsPasses)
    {
        string folder = SyntheticTaskModels();
        string yaml = $$"""
            models:
              - model: {{folder}}/a
                parameters: {{modelParameters}}
              - model: {{folder}}/b
                parameters: {{modelParameters}}
              - model: {{folder}}/c
                parameters: {{modelParameters.Replace("0.", "0.4")}}
            base_model: {{folder}}/base
            merge_method: {{method}}
            parameters: { {{global}} }
            """;
        MergeRecipe recipe = RecipeParser.Parse(yaml, "stream.yml");
        string whole = Output(), streamed = Output();
        // 3 inputs + base + output of 3,003,000 float32 = 60 MB: whole under 500 MB, 1M-element chunks under 30 MB.
        var big = MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole, MemoryLimitBytes = 500_000_000, Seed = 7, FuseElementwise = false });
        var small = MergeRunner.Run(recipe, new MergeOptions { OutputPath = streamed, MemoryLimitBytes = 30_000_000, Threads = 1, Seed = 7 });
        Assert.True(big.PeakBufferBytes >= 5L * 3_003_000 * 4, "the reference run did not hold the whole tensor");
        Assert.InRange(small.PeakBufferBytes, 1, 30_000_000);
        // Each statistics pass reads the large tensor of the four inputs (bf16) once more.
        Assert.Equal(big.BytesRead + statisticsPasses * 4L * 3_003_000 * 2, small.BytesRead);
        byte[] expected = File.ReadAllBytes(Path.Combine(whole, "model.safetensors"));
        byte[] actual = File.ReadAllBytes(Path.Combine(streamed, "model.safetensors"));
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{method}: streamed output differs from the whole-tensor merge");
    }

    [Theory]
    [InlineData("slerp", "a", true, "{}", "t: 0.3", 1)] // ‖v0‖², ‖v1‖², ⟨v0, v1⟩
    [InlineData("nuslerp", "a b", true, "{weight: 0.4}", "", 1)] // one angle for the whole tensor
    [InlineData("nuslerp", "a b", false, "{weight: 0.4}", "nuslerp_flatten: false", 1)] // rows of 1000, some cut by chunks
    [InlineData("nuslerp", "a b", true, "{weight: 0.4}", "nuslerp_flatten: false, nuslerp_row_wise: true", 1)] // columns
    [InlineData("multislerp", "a b c", true, "{weight: 0.3}", "", 2)] // ‖v_k‖, then ‖M‖ and ⟨v_k, M⟩
    [InlineData("multislerp", "a b c", false, "{weight: 0.3}", "normalize_weights: false", 2)]
    [InlineData("karcher", "a b c", false, "{}", "", 1)] // the Gram matrix of the inputs
    [InlineData("model_stock", "a b c", true, "{}", "", 1)] // the Gram matrix of the task vectors
    [InlineData("model_stock", "a b", true, "{}", "filter_wise: true", 1)] // one per row
    public void Spherical_methods_merge_tensors_larger_than_the_limit_with_the_same_bytes(string method, string inputs, bool withBase,
        string modelParameters, string global, int statisticsPasses)
    {
        string folder = SyntheticTaskModels();
        string models = string.Concat(inputs.Split(' ').Select(m => $"  - model: {folder}/{m}\n    parameters: {modelParameters.Replace("0.", m == "b" ? "0.5" : "0.")}\n"));
        string yaml = $"models:\n{models}{(withBase ? $"base_model: {folder}/base\n" : "")}merge_method: {method}\nparameters: {{ {global} }}\n";
        MergeRecipe recipe = RecipeParser.Parse(yaml, "stream.yml");
        string whole = Output(), streamed = Output();
        int rows = inputs.Split(' ').Length + (withBase ? 1 : 0);
        var big = MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole, MemoryLimitBytes = 500_000_000, Seed = 7, FuseElementwise = false });
        var small = MergeRunner.Run(recipe, new MergeOptions { OutputPath = streamed, MemoryLimitBytes = 30_000_000, Threads = 1, Seed = 7 });
        Assert.True(big.PeakBufferBytes >= (rows + 1L) * 3_003_000 * 4, "the reference run did not hold the whole tensor");
        Assert.InRange(small.PeakBufferBytes, 1, 30_000_000);
        // Each statistics pass reads the large tensor of the inputs (bf16) once more.
        Assert.Equal(big.BytesRead + statisticsPasses * rows * 3_003_000L * 2, small.BytesRead);
        byte[] expected = File.ReadAllBytes(Path.Combine(whole, "model.safetensors"));
        byte[] actual = File.ReadAllBytes(Path.Combine(streamed, "model.safetensors"));
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"{method}: streamed output differs from the whole-tensor merge");
    }

    [Theory]
    [InlineData(new long[] { 3003, 1000 })] // rows of 1,000: chunk boundaries (multiples of 2^20) cut rows in two
    [InlineData(new long[] { 3003000 })] // one row longer than a chunk: assembled across three chunks
    [InlineData(new long[] { 733, 4096 })] // rows that divide the chunks: no row is cut
    public void Arcee_fusion_streams_tensors_larger_than_the_limit_with_the_same_bytes(long[] shape)
    {
        string folder = SyntheticTaskModels(shape);
        long n = shape.Aggregate(1L, (a, b) => a * b);
        MergeRecipe recipe = RecipeParser.Parse($$"""
            models:
              - model: {{folder}}/a
            base_model: {{folder}}/base
            merge_method: arcee_fusion
            """, "arcee.yml");
        string whole = Output(), streamed = Output();
        // Model + base + output of about 3M float32 = 36 MB: whole under 500 MB, 1M-element chunks under 30 MB.
        var big = MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole, MemoryLimitBytes = 500_000_000, Seed = 3 });
        var small = MergeRunner.Run(recipe, new MergeOptions { OutputPath = streamed, MemoryLimitBytes = 30_000_000, Threads = 1, Seed = 3 });
        Assert.True(big.PeakBufferBytes >= 3L * n * 4, "the reference run did not hold the whole tensor");
        Assert.InRange(small.PeakBufferBytes, 1, 30_000_000);
        // One statistics pass (the sampled scores) reads the large tensor of both inputs (bf16) once more.
        Assert.Equal(big.BytesRead + 2L * n * 2, small.BytesRead);
        byte[] expected = File.ReadAllBytes(Path.Combine(whole, "model.safetensors"));
        byte[] actual = File.ReadAllBytes(Path.Combine(streamed, "model.safetensors"));
        Assert.True(expected.AsSpan().SequenceEqual(actual), "arcee_fusion: streamed output differs from the whole-tensor merge");
    }

    [Fact]
    public void Elementwise_methods_merge_large_tensors_in_chunks_with_the_same_bytes()
    {
        // Two synthetic models with one 3M-element tensor (too large for the limit below in one piece).
        string folder = TestPaths.NewTempDir();
        var random = new Random(5);
        string[] models = ["a", "b"];
        foreach (string m in models)
        {
            Directory.CreateDirectory(Path.Combine(folder, m));
            var header = new TensorHeader("big.weight", DType.BF16, [3000, 1000]);
            using var writer = new SafeTensorsWriter(Path.Combine(folder, m, "model.safetensors"), [header], null);
            var values = new float[3_000_000];
            for (int i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() - 0.5);
            writer.WriteFloat32(values);
            writer.Complete();
        }
        string yaml = $$"""
            models:
              - model: {{folder}}/a
                parameters: {weight: 0.3}
              - model: {{folder}}/b
                parameters: {weight: 0.9}
            merge_method: linear
            dtype: float32
            """;
        MergeRecipe recipe = RecipeParser.Parse(yaml, "chunks.yml");
        string whole = Output(), chunked = Output();
        var big = MergeRunner.Run(recipe, new MergeOptions { OutputPath = whole, MemoryLimitBytes = 500_000_000, FuseElementwise = false });
        var small = MergeRunner.Run(recipe, new MergeOptions { OutputPath = chunked, MemoryLimitBytes = 30_000_000 });
        Assert.True(small.PeakBufferBytes <= 30_000_000);
        Assert.True(small.PeakBufferBytes < 3 * 3_000_000 * 4, "the tensor was not cut into chunks");
        Assert.True(File.ReadAllBytes(Path.Combine(whole, "model.safetensors")).AsSpan()
            .SequenceEqual(File.ReadAllBytes(Path.Combine(chunked, "model.safetensors"))));
    }

    [Fact]
    public void Parts_split_shards_by_bytes_and_cover_each_exactly_once()
    {
        var shards = Enumerable.Range(1, 10).Select(i => new ShardPlan($"s{i}", [new TensorHeader($"t{i}", DType.F32, [i * 100])])).ToArray();
        var seen = new List<string>();
        for (int p = 1; p <= 4; p++)
        {
            var part = new PartSelection(p, 4).Select(shards);
            Assert.NotEmpty(part);
            seen.AddRange(part);
        }
        Assert.Equal(shards.Select(s => s.FileName).Order(), seen.Order());
        Assert.Throws<WeldException>(() => PartSelection.Parse("0/3"));
        Assert.Throws<WeldException>(() => PartSelection.Parse("4/3"));
        Assert.Equal(new PartSelection(2, 8), PartSelection.Parse("2/8"));
    }

    [Fact]
    public async Task The_buffer_pool_blocks_instead_of_exceeding_its_limit()
    {
        using var pool = new FloatBufferPool(1000 * sizeof(float));
        var a = pool.Rent(600, default);
        var rentB = Task.Run(() => pool.Rent(600, default));
        Assert.NotSame(rentB, await Task.WhenAny(rentB, Task.Delay(300))); // would exceed the limit: waits
        pool.Return(a);
        Assert.Same(rentB, await Task.WhenAny(rentB, Task.Delay(5000)));
        Assert.True(pool.PeakBytes <= 1000 * sizeof(float));
        Assert.Throws<WeldException>(() => pool.Rent(1001, default));
    }

    [Fact]
    public void The_buffer_pool_grows_free_buffers_for_larger_sizes_within_its_limit()
    {
        const int Million = 1 << 20;
        using var pool = new FloatBufferPool(40L * Million * sizeof(float));
        Weld.Kernels.NativeFloatBuffer a = pool.Rent(10 * Million, default);
        a.Span.Fill(1f);
        pool.Return(a);
        // Too large for the free buffer: it grows (the same object, keeping its pages) instead of a second allocation.
        Weld.Kernels.NativeFloatBuffer b = pool.Rent(30 * Million, default);
        Assert.Same(a, b);
        Assert.Equal(30 * Million, b.Length);
        Assert.Equal(30L * Million * sizeof(float), pool.AllocatedBytes);
        Assert.Equal(30L * Million * sizeof(float), pool.FreshBytes); // 10M new, then 20M of growth
        b.Span.Fill(2f); // every float of the grown buffer is writable
        Assert.Equal(2f, b.Span[^1]);
        pool.Return(b);
        // Room for a fresh buffer: the large free one stays for large requests.
        Weld.Kernels.NativeFloatBuffer c = pool.Rent(5 * Million, default);
        Assert.NotSame(b, c);
        Assert.Equal(35L * Million * sizeof(float), pool.AllocatedBytes);
        pool.Return(c);
        // Larger than both free buffers and no room to grow one beside the other: the smaller is released, the larger grows.
        Weld.Kernels.NativeFloatBuffer d = pool.Rent(38 * Million, default);
        Assert.Same(b, d);
        Assert.Equal(38L * Million * sizeof(float), pool.AllocatedBytes);
        Assert.True(pool.PeakBytes <= 40L * Million * sizeof(float));
        pool.Return(d);
    }

    /// <summary>IProgress that runs on the reporting thread (Progress&lt;T&gt; posts asynchronously).</summary>
    private sealed class SyncProgress(Action<MergeProgress> report) : IProgress<MergeProgress>
    {
        public void Report(MergeProgress value) => report(value);
    }
}
