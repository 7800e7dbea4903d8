using Weld.Engine.Methods;
using Weld.Kernels;
using Weld.Kernels.Cpu;
using Xunit;

namespace Weld.Engine.Tests.Methods;

/// <summary>Runs one method on in-memory tensors and builds random inputs shaped like real checkpoints.</summary>
internal static class MethodHarness
{
    public static readonly IMergeKernels Kernels = new CpuKernels();

    public const uint TensorHash = 424242;

    /// <summary>Uniform values in ±scale, optionally rounded to bf16 (so equal magnitudes are common).</summary>
    public static float[] RandomTensor(Random random, int n, float scale, bool bf16 = true)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            float v = (float)(random.NextDouble() * 2 - 1) * scale;
            x[i] = bf16 ? Bf16(v) : v;
        }
        return x;
    }

    public static float Bf16(float v) => BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u);

    /// <summary>A base and <paramref name="k"/> bf16 fine-tunes of it (base + a small delta, rounded to bf16).</summary>
    public static (float[] Baseline, float[][] Models) RandomModels(int seed, int n, int k, float deltaScale = 0.01f)
    {
        var random = new Random(seed);
        float[] baseline = RandomTensor(random, n, 1f);
        var models = new float[k][];
        for (int m = 0; m < k; m++)
        {
            float[] delta = RandomTensor(random, n, deltaScale);
            models[m] = new float[n];
            for (int i = 0; i < n; i++) models[m][i] = Bf16(baseline[i] + delta[i]);
        }
        return (baseline, models);
    }

    /// <summary>Merges with the method's defaults overridden by <paramref name="perModel"/> and <paramref name="global"/>.</summary>
    public static float[] Run(IMergeMethod method, float[]? baseline, float[][] models, long[] shape,
        Action<int, ResolvedParameters>? perModel = null, Action<ResolvedParameters>? global = null, ulong seed = 7)
    {
        int n = models[0].Length;
        var stacked = new float[models.Length * n];
        for (int m = 0; m < models.Length; m++) models[m].CopyTo(stacked, m * n);
        var parameters = new ResolvedParameters[models.Length];
        for (int m = 0; m < models.Length; m++)
        {
            parameters[m] = Defaults(method, ParameterScope.PerModel);
            perModel?.Invoke(m, parameters[m]);
        }
        ResolvedParameters globals = Defaults(method, ParameterScope.Global);
        global?.Invoke(globals);
        var output = new float[n];
        method.Merge(new TensorMergeInputs
        {
            Kernels = Kernels,
            TensorName = "model.layers.1.mlp.down_proj.weight",
            Shape = shape,
            Models = stacked,
            Base = baseline,
            ModelParameters = parameters,
            Global = globals,
            ModelIndices = Enumerable.Range(1, models.Length).ToArray(),
            Seed = seed,
            TensorHash = TensorHash,
        }, output);
        return output;
    }

    /// <summary>The random key the harness gives model row <paramref name="row"/>.</summary>
    public static PhiloxKey Key(int row, ulong seed = 7) => new(seed, TensorHash, (uint)(row + 1));

    internal static ResolvedParameters Defaults(IMergeMethod method, ParameterScope scope)
    {
        var p = new ResolvedParameters();
        foreach (var spec in method.Parameters)
            if (spec.Scope == scope && spec.Default is not null) p.Set(spec.Name, spec.Default);
        return p;
    }

    public static void AssertBits(float[] expected, float[] actual, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i].Equals(actual[i]), $"{context}: element {i}: expected {expected[i]:R}, got {actual[i]:R}");
    }

    public static void AssertClose(float[] expected, float[] actual, double relative, string context)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = 0;
        foreach (float e in expected) scale = Math.Max(scale, Math.Abs(e));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= relative * Math.Max(scale, 1e-30),
                $"{context}: element {i}: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
