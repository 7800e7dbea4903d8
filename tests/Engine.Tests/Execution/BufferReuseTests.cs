using Weld.Engine.Config;
using Weld.Engine.Execution;
using Weld.Engine.SafeTensors;
using Weld.Kernels;
using Weld.Tests;
using Xunit;

namespace Weld.Engine.Tests.Execution;

/// <summary>
/// The working buffers are kept and reused from tensor to tensor (fresh pages cost the kernel's zeroing), without two
/// live tensors ever sharing one and within the budget.
/// </summary>
public class BufferReuseTests
{
    private const int Million = 1 << 20;

    [Fact]
    public void A_full_budget_lends_a_larger_free_buffer_whole_instead_of_shrinking_it()
    {
        using var pool = new FloatBufferPool(40L * Million * sizeof(float));
        NativeFloatBuffer a = pool.Rent(30 * Million, default);
        pool.Return(a);
        // Room for a fresh 5M buffer: the 30M one stays free for a large request.
        NativeFloatBuffer b = pool.Rent(5 * Million, default);
        Assert.NotSame(a, b);
        long fresh = pool.FreshBytes;
        Assert.Equal(35L * Million * sizeof(float), fresh);
        // No room for 8M more: the free 30M buffer is lent as it is, its pages kept (shrinking would free them, and the
        // next large request would take them fresh again).
        NativeFloatBuffer c = pool.Rent(8 * Million, default);
        Assert.Same(a, c);
        Assert.Equal(30 * Million, c.Length);
        Assert.Equal(fresh, pool.FreshBytes);
        Assert.Equal(35L * Million * sizeof(float), pool.AllocatedBytes);
        pool.Return(c);
        NativeFloatBuffer d = pool.Rent(30 * Million, default); // the large request finds it again
        Assert.Same(a, d);
        Assert.Equal(fresh, pool.FreshBytes);
        pool.Return(b);
        pool.Return(d);
        Assert.True(pool.PeakBytes <= 40L * Million * sizeof(float));
    }

    [Fact]
    public void Tensors_of_sizes_seen_before_take_no_fresh_memory()
    {
        // A stack of inputs and a result per tensor, two tensors in flight, sizes cycling like a model's layers.
        int[] elements = [4 * Million, Million, Million / 4, 4 * Million, 7];
        using var pool = new FloatBufferPool(200L * Million * sizeof(float));
        long afterFirstLayer = 0;
        for (int layer = 0; layer < 4; layer++)
        {
            NativeFloatBuffer? previousStack = null, previousResult = null;
            foreach (int n in elements)
            {
                NativeFloatBuffer stack = pool.Rent(3 * n, default), result = pool.Rent(n, default);
                Assert.True(stack.Length >= 3 * n && result.Length >= n);
                pool.Return(previousStack);
                pool.Return(previousResult);
                (previousStack, previousResult) = (stack, result);
            }
            pool.Return(previousStack);
            pool.Return(previousResult);
            if (layer == 0) afterFirstLayer = pool.FreshBytes;
            else Assert.Equal(afterFirstLayer, pool.FreshBytes);
        }
        Assert.InRange(afterFirstLayer, 1, pool.PeakBytes + 1);
    }

    [Fact]
    public async Task No_buffer_is_lent_to_two_renters_at_once()
    {
        // Four renters under a tight budget (so buffers are lent whole, grown and released): each stamps the floats it
        // asked for with its own id and checks them before returning; a buffer lent twice would be overwritten.
        const long Limit = 24L * Million * sizeof(float);
        using var pool = new FloatBufferPool(Limit);
        int[] sizes = [5 * Million, Million, 3 * Million, 64, 6 * Million, Million / 2];
        var renters = Enumerable.Range(0, 4).Select(id => Task.Run(() =>
        {
            var random = new Random(id);
            for (int round = 0; round < 60; round++)
            {
                int count = sizes[random.Next(sizes.Length)];
                NativeFloatBuffer buffer = pool.Rent(count, default);
                Assert.True(buffer.Length >= count);
                float stamp = id * 1000 + round;
                Span<float> asked = buffer.Span.Slice(0, count);
                asked.Fill(stamp);
                Thread.Yield();
                Assert.Equal(-1, asked.IndexOfAnyExcept(stamp));
                pool.Return(buffer);
            }
        })).ToArray();
        await Task.WhenAll(renters);
        Assert.InRange(pool.PeakBytes, 1, Limit);
        Assert.InRange(pool.AllocatedBytes, 1, Limit);
    }

    [Fact]
    public void Returning_a_buffer_twice_is_refused()
    {
        using var pool = new FloatBufferPool(Million);
        NativeFloatBuffer a = pool.Rent(1000, default);
        pool.Return(a);
        Assert.Throws<InvalidOperationException>(() => pool.Return(a));
    }

    [Fact]
    public void A_merge_holds_the_buffers_of_its_pipeline_not_its_whole_budget_and_keeps_its_bytes()
    {
        // A base and one fine-tune with twelve 1M-element tensors, merged unfused (a stack of 2 rows and a result per
        // tensor) under a 400 MB budget the whole model's buffers would fit in.
        string folder = TestPaths.NewTempDir();
        const int Tensors = 12, N = 1 << 20;
        var random = new Random(3);
        var baseValues = new float[Tensors * N];
        for (int i = 0; i < baseValues.Length; i++) baseValues[i] = (float)(random.NextDouble() - 0.5);
        foreach (string m in new[] { "base", "a" })
        {
            Directory.CreateDirectory(Path.Combine(folder, m));
            TensorHeader[] headers = Enumerable.Range(0, Tensors).Select(t => new TensorHeader($"t{t:D2}.weight", DType.BF16, [1024, 1024])).ToArray();
            using var writer = new SafeTensorsWriter(Path.Combine(folder, m, "model.safetensors"), headers, null);
            for (int t = 0; t < Tensors; t++)
            {
                float[] values = baseValues.AsSpan(t * N, N).ToArray();
                if (m != "base") for (int i = 0; i < N; i++) values[i] += (float)(0.01 * (random.NextDouble() - 0.5));
                writer.WriteFloat32(values);
            }
            writer.Complete();
        }
        MergeRecipe recipe = RecipeParser.Parse($$"""
            models:
              - model: {{folder}}/a
                parameters: {weight: 0.7}
            base_model: {{folder}}/base
            merge_method: task_arithmetic
            """, "reuse.yml");
        string unfused = Path.Combine(TestPaths.NewTempDir(), "out"), fused = Path.Combine(TestPaths.NewTempDir(), "out");
        // The writer is made the slowest stage (it reports progress after each tensor), so a loader free to run ahead
        // would fill the channels (16M floats of buffers when tried without the in-flight limits; the bound below is 10M).
        var slowWriter = new SlowProgress();
        var summary = MergeRunner.Run(recipe, new MergeOptions { OutputPath = unfused, MemoryLimitBytes = 400_000_000, FuseElementwise = false, Threads = 1 },
            slowWriter, null, default);
        MergeRunner.Run(recipe, new MergeOptions { OutputPath = fused, MemoryLimitBytes = 400_000_000 });

        // At most two stacks (one merging, one loaded next) and three results (loaded, merging, writing) are alive, and
        // the pool only takes a buffer when none is free: never more than five buffers, each at most a stack.
        long stackBytes = 2L * N * sizeof(float);
        Assert.Equal(5, MergeExecutor.InputStacksInFlight + MergeExecutor.ResultsInFlight);
        Assert.InRange(summary.PeakBufferBytes, stackBytes, 5 * stackBytes);
        Assert.True(File.ReadAllBytes(Path.Combine(unfused, "model.safetensors")).AsSpan()
            .SequenceEqual(File.ReadAllBytes(Path.Combine(fused, "model.safetensors"))));
    }

    /// <summary>A progress sink on the writer's thread that holds it up for a while after each tensor.</summary>
    private sealed class SlowProgress : IProgress<MergeProgress>
    {
        public void Report(MergeProgress value)
        {
            if (value.TensorsDone > 0) Thread.Sleep(150);
        }
    }
}
