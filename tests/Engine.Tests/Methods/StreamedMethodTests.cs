using Weld.Engine.Methods;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// Breadcrumbs, DELLA and SCE streamed in chunks (statistics passes, then the apply pass) against the same method's
/// whole-tensor <see cref="IMergeMethod.Merge"/>: the same bits, element for element.
/// </summary>
public class StreamedMethodTests
{
    private const int Chunk = TensorMergeInputs.ChunkAlignment;

    /// <summary>
    /// Odd shapes of 2.4M elements (two whole chunks and a partial one; rows of 1931 or [41 × 1571] slices straddle every
    /// chunk boundary) and bf16 models whose task vectors are mostly 0 or ±1 ulp: thousands of ties at every cut.
    /// <c>passes</c> is the number of statistics passes run (a sampled cut may finish after the first).
    /// </summary>
    public static TheoryData<string, string, string, string, int> Cases() => new()
    {
        { "breadcrumbs", "1237x1931", "density=0.9", "", 1 }, // the first chunk's sample brackets both cuts: one counting pass
        // Below, the brackets would hold over a tenth of these tied keys: the band counts with the two histogram passes.
        { "breadcrumbs", "1237x1931", "density=0.4 gamma=0.2", "rescale=1", 3 },
        { "breadcrumbs_ties", "1237x1931", "density=0.5 gamma=0.1", "", 2 },
        { "breadcrumbs_ties", "2386547", "density=0.3 gamma=0.05", "rescale=1 rescale_norm=inverse_density", 2 },
        { "breadcrumbs", "1237x1931", "density=0.7 gamma=0.5", "", 2 }, // no bottom cut: the top cut shrinks to keep ⌊density·n⌋
        { "breadcrumbs_paper", "1237x1931", "beta=0.6 gamma=0.05", "lambda=0.9", 2 },
        { "breadcrumbs_paper", "1237x1931", "beta=0.7 gamma=0.4", "", 0 }, // β + γ ≥ 1: everything masked, no passes
        { "della", "1237x1931", "density=0.5 epsilon=0.2", "", 2 },
        { "della", "37x41x1571", "density=0.3 epsilon=0.1", "", 2 },
        { "della", "2333x1024", "density=0.4 epsilon=0.1", "", 1 }, // rows of 2¹⁰ are never cut: no cut-slice pass
        { "della_linear", "1237x1931", "density=0.6 epsilon=0.15", "rescale_norm=inverse_density", 1 },
        { "della_linear", "1237x1931", "density=0.6 epsilon=0.15", "rescale=0", 1 },
        { "sce", "1237x1931", "", "", 1 },
        { "sce", "1237x1931", "", "select_topk=0.3", 4 },
        { "sce", "37x41x1571", "", "select_topk=0.7", 4 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Streamed_chunks_give_the_bits_of_the_whole_tensor(string methodName, string shapeText, string perModel, string global, int passes)
    {
        IMergeMethod method = MergeMethods.Find(methodName)!;
        long[] shape = shapeText.Split('x').Select(long.Parse).ToArray();
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        var (baseline, models) = MethodHarness.RandomModels(seed: n % 1000 + passes, n, k: 3, deltaScale: 0.006f);
        Action<int, ResolvedParameters> perModelSet = (m, p) =>
        {
            if (method.Parameters.Any(spec => spec.Name == "weight")) p.Set("weight", 0.3 + 0.25 * m);
            Apply(p, perModel);
        };
        Action<ResolvedParameters> globalSet = p => Apply(p, global);

        float[] whole = MethodHarness.Run(method, baseline, Copy(models), shape, perModelSet, globalSet);
        foreach (int chunk in new[] { Chunk, 2 * Chunk })
        {
            float[] streamed = RunStreamed((IStreamingMergeMethod)method, baseline, Copy(models), shape, perModelSet, globalSet, chunk,
                out int statisticsPasses);
            Assert.Equal(passes, statisticsPasses);
            AssertSameBits(whole, streamed, $"{methodName} {shapeText} {perModel} {global}, chunks of {chunk}");
        }
        // The task vectors must reach the output, else equal bits would show little (unless every one is masked).
        int changed = 0;
        for (int i = 0; i < n; i++) changed += whole[i] != baseline[i] ? 1 : 0;
        if (passes == 0 && methodName == "breadcrumbs_paper")
            Assert.Equal(0, changed);
        else
            Assert.True(changed > n / 100, $"{methodName}: only {changed} of {n} elements differ from the base");
    }

    [Fact]
    public void Della_refuses_to_stream_a_slice_larger_than_a_chunk()
    {
        IStreamingMergeMethod della = (IStreamingMergeMethod)MergeMethods.Find("della")!;
        var (baseline, models) = MethodHarness.RandomModels(3, 3 * (Chunk + 1), 2);
        var error = Assert.Throws<WeldException>(() =>
            RunStreamed(della, baseline, models, [3, Chunk + 1], (_, p) => p.Set("density", 0.5), null, Chunk, out _));
        Assert.Contains("raise --memory-limit", error.Message);
    }

    private static void Apply(ResolvedParameters p, string settings)
    {
        foreach (string setting in settings.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] pair = setting.Split('=');
            if (double.TryParse(pair[1], System.Globalization.CultureInfo.InvariantCulture, out double number))
                p.Set(pair[0], pair[0] == "rescale" ? number != 0 : number);
            else
                p.Set(pair[0], pair[1]);
        }
    }

    private static float[][] Copy(float[][] models) => models.Select(m => (float[])m.Clone()).ToArray();

    /// <summary>The executor's protocol: every statistics pass over the chunks in index order, then the apply pass.</summary>
    private static float[] RunStreamed(IStreamingMergeMethod method, float[] baseline, float[][] models, long[] shape,
        Action<int, ResolvedParameters>? perModel, Action<ResolvedParameters>? global, int chunk, out int statisticsPasses)
    {
        int n = models[0].Length;
        var parameters = new ResolvedParameters[models.Length];
        for (int m = 0; m < models.Length; m++)
        {
            parameters[m] = MethodHarness.Defaults(method, ParameterScope.PerModel);
            perModel?.Invoke(m, parameters[m]);
        }
        ResolvedParameters globals = MethodHarness.Defaults(method, ParameterScope.Global);
        global?.Invoke(globals);

        TensorMergeInputs Inputs(Memory<float> stacked, ReadOnlyMemory<float> baseRow, long offset, long[] chunkShape) => new()
        {
            Kernels = MethodHarness.Kernels,
            TensorName = "model.layers.1.mlp.down_proj.weight",
            Shape = chunkShape,
            Models = stacked,
            Base = baseRow,
            ModelParameters = parameters,
            Global = globals,
            ModelIndices = Enumerable.Range(1, models.Length).ToArray(),
            Seed = 7,
            TensorHash = MethodHarness.TensorHash,
            Offset = offset,
            TensorLength = n,
        };

        IStreamingTensorMerge stream = method.BeginTensor(Inputs(Memory<float>.Empty, ReadOnlyMemory<float>.Empty, 0, shape));
        var output = new float[n];
        for (int pass = 0; pass <= stream.StatisticsPasses; pass++)
        {
            for (int offset = 0; offset < n; offset += chunk)
            {
                int length = Math.Min(chunk, n - offset);
                // Fresh copies each pass: the state may overwrite the rows (and the base row in a statistics pass).
                var stacked = new float[models.Length * length];
                for (int m = 0; m < models.Length; m++) models[m].AsSpan(offset, length).CopyTo(stacked.AsSpan(m * length));
                float[] baseRow = baseline.AsSpan(offset, length).ToArray();
                TensorMergeInputs inputs = Inputs(stacked, baseRow, offset, [length]);
                if (pass < stream.StatisticsPasses)
                {
                    stream.Observe(pass, inputs);
                    if (offset + length >= n) stream.EndPass(pass);
                }
                else
                {
                    stream.Merge(inputs, output.AsSpan(offset, length));
                }
            }
        }
        statisticsPasses = stream.StatisticsPasses; // the passes run: a sampled search may finish early
        return output;
    }

    private static void AssertSameBits(float[] expected, float[] actual, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            uint e = BitConverter.SingleToUInt32Bits(expected[i]), a = BitConverter.SingleToUInt32Bits(actual[i]);
            if (e != a)
                Assert.Fail($"{context}: element {i}: expected {expected[i]:R} (0x{e:X8}), got {actual[i]:R} (0x{a:X8})");
        }
    }
}
