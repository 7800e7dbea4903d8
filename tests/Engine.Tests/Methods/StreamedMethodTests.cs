using Weld.Engine.Methods;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>
/// Breadcrumbs, DELLA, SCE and the spherical methods (slerp, nuslerp, multislerp, karcher, model_stock) streamed in chunks (statistics passes, then the apply pass) against the same method's
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
        { "dare_ties", "1237x1931", "density=0.4", "", 1 }, // the norm pass: drop and both L1 norms fused
        { "dare_linear", "2386547", "density=0.3", "", 1 },
        { "dare_linear", "1237x1931", "density=0.5", "rescale_norm=inverse_density", 0 },
        { "della", "1237x1931", "density=0.5 epsilon=0.2", "", 2 },
        { "della", "37x41x1571", "density=0.3 epsilon=0.1", "", 2 },
        { "della", "2333x1024", "density=0.4 epsilon=0.1", "", 1 }, // rows of 2¹⁰ are never cut: no cut-slice pass
        { "della_linear", "1237x1931", "density=0.6 epsilon=0.15", "rescale_norm=inverse_density", 1 },
        { "della_linear", "1237x1931", "density=0.6 epsilon=0.15", "rescale=0", 1 },
        { "sce", "1237x1931", "", "", 1 },
        // The nonzero count and the variance cut share one counting pass (the sample brackets the cut), then Σ δ².
        { "sce", "1237x1931", "", "select_topk=0.3", 2 },
        { "sce", "37x41x1571", "", "select_topk=0.7", 2 },
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

    /// <summary>
    /// SCE samples its variance bracket in the first chunk for the keep count that chunk's own nonzero share suggests, and
    /// learns k = ⌊select_topk · #{var ≠ 0}⌋ only at the end of that pass. Where the sample misleads, the cut is still
    /// exact. <c>passes</c> lists the statistics passes for chunks of 2²⁰ and 2²¹ elements. Task vectors 16× larger in the
    /// first 2²⁰ elements: a first chunk of only those puts the bracket off the cut (two histogram passes follow: 4); a
    /// first chunk half of them gives a bracket too wide to gather (the counting pass is the first histogram pass,
    /// retargeted to k at its end: 3). Variances tied over a third of the tensor give no bracket (3). Task vectors
    /// identical in nine elements of ten in the first two chunks (variance 0 there) still hit, the estimate scaling with
    /// the chunk's nonzero share (2).
    /// </summary>
    [Theory]
    [InlineData("loud first chunk", "select_topk=0.3", "4 3")]
    [InlineData("tied", "select_topk=0.3", "3 3")]
    [InlineData("unchanged first chunks", "select_topk=0.3", "2 2")]
    [InlineData("unchanged first chunks", "select_topk=0.05", "2 2")]
    public void Sce_streams_with_the_bits_of_the_whole_tensor_where_its_first_chunk_misleads(string layout, string global, string passes)
    {
        IStreamingMergeMethod method = (IStreamingMergeMethod)MergeMethods.Find("sce")!;
        long[] shape = [1237, 1931];
        int n = 1237 * 1931;
        var (baseline, models) = MethodHarness.RandomModels(seed: 17, n, k: 3, deltaScale: 0.006f);
        for (int i = 0; i < n; i++)
        {
            switch (layout)
            {
                case "loud first chunk" when i < Chunk:
                    for (int m = 0; m < 3; m++) models[m][i] = MethodHarness.Bf16(baseline[i] + (models[m][i] - baseline[i]) * 16);
                    break;
                case "unchanged first chunks" when i < 2 * Chunk && i % 10 != 0:
                    for (int m = 0; m < 3; m++) models[m][i] = MethodHarness.Bf16(baseline[i]);
                    break;
                case "tied":
                    // Three bf16 models around a base of 1: two variances, a third of the tensor at the larger one.
                    baseline[i] = 1f;
                    models[0][i] = 1.0078125f;
                    models[1][i] = i % 3 == 0 ? 0.99609375f : 1f;
                    models[2][i] = 1f;
                    break;
            }
        }
        Action<ResolvedParameters> globalSet = p => Apply(p, global);

        float[] whole = MethodHarness.Run(method, baseline, Copy(models), shape, null, globalSet);
        int[] expectedPasses = passes.Split(' ').Select(int.Parse).ToArray();
        foreach (var (chunk, expected) in new[] { Chunk, 2 * Chunk }.Zip(expectedPasses))
        {
            float[] streamed = RunStreamed(method, baseline, Copy(models), shape, null, globalSet, chunk, out int statisticsPasses);
            Assert.True(expected == statisticsPasses, $"sce {layout} {global}, chunks of {chunk}: {statisticsPasses} statistics passes, expected {expected}");
            AssertSameBits(whole, streamed, $"sce {layout} {global}, chunks of {chunk}");
        }
        int changed = 0;
        for (int i = 0; i < n; i++) changed += whole[i] != baseline[i] ? 1 : 0;
        Assert.True(changed > n / 200, $"sce {layout}: only {changed} of {n} elements differ from the base");
    }

    /// <summary>
    /// The spherical methods, whose statistics are float64 sums (norms, dot products, Gram matrices) over the whole
    /// tensor or per row: odd shapes whose rows straddle chunk boundaries, with and without a base, and inputs with
    /// NaN, ±∞, a zero tensor or an antipodal pair, where the methods define what comes out.
    /// </summary>
    public static TheoryData<string, string, int, bool, string, string, int> SphericalCases() => new()
    {
        { "slerp", "1237x1931", 1, true, "", "t=0.3", 1 },
        { "slerp", "2386547", 1, true, "nan", "t=0.7", 1 },
        { "nuslerp", "1237x1931", 2, true, "", "", 1 },
        { "nuslerp", "2386547", 2, false, "", "", 1 },
        { "nuslerp", "1237x1931", 2, false, "", "nuslerp_flatten=0", 1 }, // rows of 1931 cut by chunk boundaries
        { "nuslerp", "37x41x1571", 2, true, "inf", "nuslerp_flatten=0", 1 },
        { "nuslerp", "1237x1931", 2, true, "", "nuslerp_flatten=0 nuslerp_row_wise=1", 1 }, // columns
        { "nuslerp", "1931x1237", 2, false, "nan", "nuslerp_flatten=0 nuslerp_row_wise=1", 1 },
        { "multislerp", "1237x1931", 3, true, "", "", 2 },
        { "multislerp", "2386547", 3, false, "", "normalize_weights=0", 2 },
        { "multislerp", "1237x1931", 2, true, "antipodal", "", 2 }, // ‖M‖ = 0: the lerp fallback
        { "multislerp", "1237x1931", 1, true, "", "", 0 }, // one input is the output
        { "karcher", "1237x1931", 3, false, "", "", 1 },
        { "karcher", "2386547", 3, false, "zero", "max_iter=3", 1 }, // a zero tensor is left out
        { "karcher", "37x41x1571", 2, false, "inf", "", 1 },
        { "karcher", "1237x1931", 1, false, "", "", 0 },
        { "model_stock", "1237x1931", 3, true, "", "", 1 },
        { "model_stock", "1237x1931", 2, true, "", "filter_wise=1", 1 }, // one ratio per row of 1931
        { "model_stock", "37x41x1571", 3, true, "nan", "filter_wise=1", 1 },
        { "model_stock", "2386547", 2, true, "inf", "", 1 },
    };

    [Theory]
    [MemberData(nameof(SphericalCases))]
    public void Spherical_methods_stream_with_the_bits_of_the_whole_tensor(string methodName, string shapeText, int count, bool withBase,
        string special, string global, int passes)
    {
        IMergeMethod method = MergeMethods.Find(methodName)!;
        long[] shape = shapeText.Split('x').Select(long.Parse).ToArray();
        int n = (int)shape.Aggregate(1L, (a, b) => a * b);
        // Task vectors against a base are small; inputs without one are far apart, so the angles are not tiny.
        var (baseline, models) = MethodHarness.RandomModels(seed: n % 1000 + count, n, count, deltaScale: withBase ? 0.006f : 0.3f);
        if (!withBase)
            for (int m = 0; m < count; m++)
                models[m] = MethodHarness.RandomTensor(new Random(m + 5), n, 1f);
        Special(special, baseline, models);
        float[]? baseRow = withBase ? baseline : null;
        Action<int, ResolvedParameters> perModelSet = (m, p) =>
        {
            if (method.Parameters.Any(spec => spec.Name == "weight")) p.Set("weight", special == "antipodal" ? 0.5 : 0.3 + 0.25 * m);
        };
        Action<ResolvedParameters> globalSet = p => Apply(p, global);

        float[] whole = MethodHarness.Run(method, baseRow, Copy(models), shape, perModelSet, globalSet);
        foreach (int chunk in new[] { Chunk, 2 * Chunk })
        {
            float[] streamed = RunStreamed((IStreamingMergeMethod)method, baseRow, Copy(models), shape, perModelSet, globalSet, chunk,
                out int statisticsPasses);
            Assert.Equal(passes, statisticsPasses);
            AssertSameBits(whole, streamed, $"{methodName} {shapeText} {special} {global}, chunks of {chunk}");
        }
        // The output must be a mix, not one of the inputs, and finite where the inputs are: one input (karcher, multislerp)
        // is returned as it is, and an antipodal pair of equal weights falls back to the lerp, which gives the base.
        if (count == 1 && methodName != "slerp")
            Assert.Equal(0, CountDifferent(whole, models[0]));
        else if (special == "antipodal")
            Assert.Equal(0, CountDifferent(whole, baseline));
        else
        {
            float[] reference = withBase ? baseline : models[0];
            int changed = 0;
            for (int i = 0; i < n; i++) changed += whole[i] != reference[i] ? 1 : 0;
            Assert.True(changed > n / 100, $"{methodName}: only {changed} of {n} elements differ from the reference input");
        }
        if (special == "")
            Assert.True(whole.All(float.IsFinite), $"{methodName}: a finite input gave a non-finite output");
    }

    /// <summary>
    /// Plants the special values: "nan"/"inf" in the first model next to a chunk boundary and inside a row; "zero" makes
    /// the second model 0; "antipodal" makes the second task vector the negative of the first.
    /// </summary>
    private static void Special(string special, float[] baseline, float[][] models)
    {
        switch (special)
        {
            case "nan":
                models[0][Chunk - 1] = float.NaN;
                models[0][12_345] = float.NaN;
                break;
            case "inf":
                models[0][Chunk] = float.PositiveInfinity;
                models[^1][54_321] = float.NegativeInfinity;
                break;
            case "zero":
                Array.Clear(models[1]);
                break;
            case "antipodal":
                for (int i = 0; i < baseline.Length; i++) models[1][i] = baseline[i] - (models[0][i] - baseline[i]);
                break;
        }
    }

    private static int CountDifferent(float[] a, float[] b)
    {
        int different = 0;
        for (int i = 0; i < a.Length; i++) different += BitConverter.SingleToUInt32Bits(a[i]) != BitConverter.SingleToUInt32Bits(b[i]) ? 1 : 0;
        return different;
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
    private static float[] RunStreamed(IStreamingMergeMethod method, float[]? baseline, float[][] models, long[] shape,
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
                float[] baseRow = baseline is null ? [] : baseline.AsSpan(offset, length).ToArray();
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
