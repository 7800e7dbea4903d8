using BenchmarkDotNet.Attributes;
using Weld.Engine.Methods;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// Whole merge methods (IMergeMethod.Merge: task vectors, sparsification, consensus, base added back) on one
/// 16M-element tensor of K = 3 fine-tunes + base, against a same-run memory copy of one tensor. Throughput ratio
/// = (method's input GB/s) / (copy's GB/s), the figure the targets in bench/RESULTS.md use.
/// </summary>
[Config(typeof(InputBandwidthConfig))]
public class MethodBenchmarks
{
    private const int Length = 16 << 20;
    private const int Models = 3;

    private float[] _pristine = [];
    private float[] _stacked = [];
    private float[] _output = [];
    private float[] _copySource = [];
    private CpuKernels _kernels = null!;

    /// <summary>Allocates and fills base and fine-tunes (base + small deltas) once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _kernels = new CpuKernels();
        var random = new System.Random(20241123);
        _pristine = new float[(Models + 1) * Length];
        Span<float> baseline = _pristine.AsSpan(Models * Length, Length);
        for (int i = 0; i < Length; i++) baseline[i] = (float)(random.NextDouble() - 0.5) * 0.1f;
        for (int k = 0; k < Models; k++)
            for (int i = 0; i < Length; i++)
                _pristine[k * Length + i] = baseline[i] + (float)(random.NextDouble() - 0.5) * 0.002f;
        _stacked = new float[_pristine.Length];
        _output = new float[Length];
        _copySource = baseline.ToArray();
    }

    /// <summary>Methods form task vectors in place: every iteration starts from the original inputs.</summary>
    [IterationSetup(Targets = [nameof(TaskArithmetic), nameof(Ties), nameof(DareTies), nameof(DareLinear), nameof(Breadcrumbs)])]
    public void RestoreInputs() => _pristine.CopyTo(_stacked, 0);

    /// <summary>Baseline: copy one tensor (64 MiB) with the kernels' chunking and threads.</summary>
    [Benchmark(Baseline = true)]
    [InputBytes(Length * sizeof(float))]
    public void MemoryCopy() => KernelBenchmarks.ChunkedCopy(_copySource, _output, -1);

    /// <summary>linear over the three fine-tunes (no base).</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void Linear() => Run(new Linear(), withBase: false);

    /// <summary>task_arithmetic, λ = 1.</summary>
    [Benchmark]
    [InputBytes((Models + 1) * Length * sizeof(float))]
    public void TaskArithmetic() => Run(new TaskArithmetic());

    /// <summary>ties, density 0.3.</summary>
    [Benchmark]
    [InputBytes((Models + 1) * Length * sizeof(float))]
    public void Ties() => Run(new Ties(), ("density", 0.3));

    /// <summary>dare_ties, density 0.3 (L1 rescale, mergekit's default).</summary>
    [Benchmark]
    [InputBytes((Models + 1) * Length * sizeof(float))]
    public void DareTies() => Run(new DareTies(), ("density", 0.3));

    /// <summary>dare_linear, density 0.3.</summary>
    [Benchmark]
    [InputBytes((Models + 1) * Length * sizeof(float))]
    public void DareLinear() => Run(new DareLinear(), ("density", 0.3));

    /// <summary>breadcrumbs, density 0.3, gamma 0.01.</summary>
    [Benchmark]
    [InputBytes((Models + 1) * Length * sizeof(float))]
    public void Breadcrumbs() => Run(new Breadcrumbs(), ("density", 0.3));

    private void Run(IMergeMethod method, params (string Name, double Value)[] perModel) => Run(method, true, perModel);

    private void Run(IMergeMethod method, bool withBase, params (string Name, double Value)[] perModel)
    {
        var global = new ResolvedParameters();
        var models = new ResolvedParameters[Models];
        for (int k = 0; k < Models; k++) models[k] = new ResolvedParameters();
        foreach (ParameterSpec spec in method.Parameters)
        {
            object value = spec.Default ?? (spec.Name == "weight" ? 1.0 / Models : throw new InvalidOperationException(spec.Name));
            if (spec.Scope == ParameterScope.Global) global.Set(spec.Name, value);
            else foreach (var m in models) m.Set(spec.Name, value);
        }
        foreach (var (name, value) in perModel)
            foreach (var m in models) m.Set(name, value);
        float[] stacked = withBase ? _stacked : _pristine; // linear does not write its inputs
        method.Merge(new TensorMergeInputs
        {
            Kernels = _kernels,
            TensorName = "bench.weight",
            Shape = [Length],
            Models = stacked.AsMemory(0, Models * Length),
            Base = withBase ? stacked.AsMemory(Models * Length, Length) : ReadOnlyMemory<float>.Empty,
            ModelParameters = models,
            Global = global,
            ModelIndices = [0, 1, 2],
            Seed = 42,
            TensorHash = 0x1234,
        }, _output);
    }
}
