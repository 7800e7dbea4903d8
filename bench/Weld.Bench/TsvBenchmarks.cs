using BenchmarkDotNet.Attributes;
using Weld.Engine.Compression;
using Weld.Engine.Methods;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// TSV-Merge of one square tensor from three fine-tunes (three thin SVDs of the task vectors and two polar factors,
/// all exact, in double precision through MathNet):
/// <c>dotnet run -c Release --project bench/Weld.Bench -- --filter '*TsvBenchmarks*'</c>.
/// Kept apart from <see cref="MethodBenchmarks"/> (2048² elementwise-scale inputs): its cost is O(T·n³), not memory traffic.
/// </summary>
[MemoryDiagnoser]
public class TsvBenchmarks
{
    private readonly IMergeMethod _method = new Tsv();
    private readonly CpuKernels _kernels = new();
    private float[] _pristine = [];
    private float[] _stacked = [];
    private float[] _baseline = [];
    private float[] _output = [];

    /// <summary>Rows and columns of the tensor.</summary>
    [Params(256, 512, 1024)]
    public int Side { get; set; } = 512;

    /// <summary>A base and three fine-tunes that differ from it by small noise.</summary>
    [GlobalSetup]
    public void Setup()
    {
        int length = Side * Side;
        var random = new Random(20250301);
        _baseline = new float[length];
        for (int i = 0; i < length; i++) _baseline[i] = (float)(random.NextDouble() - 0.5) * 0.1f;
        _pristine = new float[3 * length];
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < length; i++)
                _pristine[k * length + i] = _baseline[i] + (float)(random.NextDouble() - 0.5) * 0.01f;
        _stacked = new float[_pristine.Length];
        _output = new float[length];
    }

    /// <summary>Restores the inputs the previous iteration turned into task vectors.</summary>
    [IterationSetup]
    public void RestoreInputs() => _pristine.CopyTo(_stacked, 0);

    /// <summary>Merges the tensor once with the defaults (sv_reduction 1/T, alpha 1).</summary>
    [Benchmark]
    public void Merge() => _method.Merge(new TensorMergeInputs
    {
        Kernels = _kernels,
        TensorName = "model.layers.0.self_attn.o_proj.weight",
        Shape = [Side, Side],
        Models = _stacked,
        Base = _baseline,
        ModelParameters = [ResolvedParameters.Empty, ResolvedParameters.Empty, ResolvedParameters.Empty],
        Global = new ResolvedParameters().Set("sv_reduction", 0.0).Set("alpha", 1.0),
        ModelIndices = [1, 2, 3],
    }, _output);
}

/// <summary>
/// Rank-64 randomized SVD of a 4096 × 4096 matrix with its products on Weld's CPU GEMM or on the GPU GEMM (the cuda case
/// needs a GPU; it fails at setup without one):
/// <c>dotnet run -c Release --project bench/Weld.Bench -- --filter '*RandomizedSvdDeviceBenchmarks*'</c>.
/// </summary>
public class RandomizedSvdDeviceBenchmarks
{
    private const int Size = 4096;
    private float[] _matrix = [];
    private IGemm _gemm = null!;

    /// <summary>Where the products run: cpu or cuda.</summary>
    [Params("cpu", "cuda")]
    public string Device { get; set; } = "cpu";

    /// <summary>Fills a dense uniform random matrix and starts the device.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1234);
        _matrix = new float[Size * Size];
        for (int i = 0; i < _matrix.Length; i++) _matrix[i] = (float)(random.NextDouble() - 0.5);
        _gemm = GemmBackends.Select(Device, -1, out _);
    }

    /// <summary>Releases the device.</summary>
    [GlobalCleanup]
    public void Cleanup() => (_gemm as IDisposable)?.Dispose();

    /// <summary>Randomized truncated SVD (r = 64, p = 10, q = 2).</summary>
    [Benchmark]
    public TruncatedSvd Randomized() => RandomizedSvd.Compute(_matrix, Size, Size, 64, seed: 1, _gemm);
}
