using BenchmarkDotNet.Attributes;
using Weld.Engine.Methods;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// One whole-tensor merge (2048 × 2048 float32, a base and up to three fine-tunes) per merge method: the time of
/// <see cref="IMergeMethod.Merge"/> alone, inputs in memory, CPU kernels on every core. The "Input GB/s" column is
/// the bytes of the method's inputs per second; divided by <see cref="KernelBenchmarks.MemoryCopy"/>'s GB/s from the
/// same run it gives the throughput ratio of bench/RESULTS.md.
/// </summary>
/// <remarks>
/// Methods turn their input rows into task vectors in place, so each iteration starts from a fresh copy (not timed).
/// Parameters are the methods' defaults plus what each requires: weight 1, density 0.5, t 0.001, beta 0.5.
/// </remarks>
[Config(typeof(InputBandwidthConfig))]
public class MethodBenchmarks
{
    private const int Side = 2048;
    private const int Length = Side * Side;

    private IMergeMethod _method = null!;
    private float[] _pristine = [];
    private float[] _stacked = [];
    private float[] _baseline = [];
    private float[] _output = [];
    private float[] _auxiliary = [];
    private ResolvedParameters[] _perModel = [];
    private ResolvedParameters _global = ResolvedParameters.Empty;
    private readonly CpuKernels _kernels = new();

    /// <summary>The recipe name of the method under test.</summary>
    [Params("linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "breadcrumbs", "breadcrumbs_ties", "slerp",
        "model_stock", "della", "della_linear", "sce", "nuslerp", "multislerp", "karcher", "nearswap", "arcee_fusion", "ram",
        "ramplus_tl", "magmax", "breadcrumbs_paper", "fisher", "consensus", "divergence_weights")]
    public string Method { get; set; } = "magmax";

    /// <summary>Builds the inputs: a base and fine-tunes that differ from it by small noise.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _method = MergeMethods.Find(Method) ?? throw new InvalidOperationException($"unknown method {Method}");
        int models = ModelCount(_method);
        var random = new Random(20250301);
        _baseline = new float[Length];
        for (int i = 0; i < Length; i++) _baseline[i] = (float)(random.NextDouble() - 0.5) * 0.1f;
        _pristine = new float[models * Length];
        for (int k = 0; k < models; k++)
            for (int i = 0; i < Length; i++)
                _pristine[k * Length + i] = _baseline[i] + (float)(random.NextDouble() - 0.5) * 0.01f;
        // Methods that read per-model tensor files (fisher) get one positive row per model.
        if (_method.Parameters.Any(p => p.NamesTensorFile))
        {
            _auxiliary = new float[models * Length];
            for (int i = 0; i < _auxiliary.Length; i++) _auxiliary[i] = (float)random.NextDouble() * 1e-3f;
        }
        _stacked = new float[_pristine.Length];
        _output = new float[Length];
        _perModel = new ResolvedParameters[models];
        for (int k = 0; k < models; k++) _perModel[k] = Parameters(ParameterScope.PerModel);
        _global = Parameters(ParameterScope.Global);
    }

    /// <summary>Restores the inputs the previous iteration overwrote.</summary>
    [IterationSetup]
    public void RestoreInputs() => _pristine.CopyTo(_stacked, 0);

    /// <summary>Merges the tensor once.</summary>
    [Benchmark]
    public void Merge() => _method.Merge(new TensorMergeInputs
    {
        Kernels = _kernels,
        TensorName = "model.layers.0.mlp.up_proj.weight",
        Shape = [Side, Side],
        Models = _stacked,
        Base = _method.Traits.BaseModel == BaseModelUse.None ? null : _baseline,
        Auxiliary = _auxiliary,
        ModelParameters = _perModel,
        Global = _global,
        ModelIndices = Enumerable.Range(1, _perModel.Length).ToArray(),
        Seed = 7,
        TensorHash = 0x5eed,
    }, _output);

    private static int ModelCount(IMergeMethod method) => Math.Clamp(3, method.Traits.MinModels, method.Traits.MaxModels);

    /// <summary>Bytes of float32 input one merge of <paramref name="methodName"/> reads (fine-tunes + base + auxiliary rows).</summary>
    public static long InputBytes(string methodName)
    {
        IMergeMethod method = MergeMethods.Find(methodName) ?? throw new InvalidOperationException($"unknown method {methodName}");
        int rows = ModelCount(method) + (method.Traits.BaseModel == BaseModelUse.None ? 0 : 1)
            + (method.Parameters.Any(p => p.NamesTensorFile) ? ModelCount(method) : 0); // fisher's Fisher rows
        return (long)rows * Length * sizeof(float);
    }

    private ResolvedParameters Parameters(ParameterScope scope)
    {
        var values = new ResolvedParameters();
        foreach (ParameterSpec spec in _method.Parameters)
        {
            if (spec.Scope != scope) continue;
            object? value = spec.Name switch
            {
                "weight" => 1.0,
                "density" => 0.5,
                "t" => _method.Name == "slerp" ? 0.5 : 0.001,
                "beta" => 0.5,
                _ => spec.Default,
            };
            if (value is not null) values.Set(spec.Name, value);
        }
        return values;
    }
}
