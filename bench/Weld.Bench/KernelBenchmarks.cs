using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Weld.Kernels;
using Weld.Kernels.Cpu;

namespace Weld.Bench;

/// <summary>
/// CPU merge kernels on 16M-element float32 tensors (K = 3 inputs for the weighted sum and TIES), each against a
/// memory copy of one tensor in the same run: the Ratio column is time relative to that copy, the "Input GB/s"
/// column is bytes of input read per second.
/// </summary>
/// <remarks>
/// The copy baseline uses the same 64K-element chunks and thread count as the kernels, so both sides get the same
/// memory parallelism. In-place kernels get a fresh copy of their input before each iteration (not timed).
/// </remarks>
[Config(typeof(InputBandwidthConfig))]
[MemoryDiagnoser]
public class KernelBenchmarks
{
    private const int Length = 16 << 20;
    private const int Models = 3;
    private const int FiberLength = 4096; // a row of a [4096, 4096] projection: della's fibers, Model Stock's filter-wise rows

    private float[] _stacked = [];
    private float[] _weights = [];
    private float[] _pristine = [];
    private float[] _work = [];
    private float[] _output = [];
    private byte[] _packed = [];
    private readonly long[] _shared = new long[Models];
    private readonly long[] _unique = new long[Models];
    private float[] _rowWeights = [];
    private float[] _rowBaseWeights = [];
    private CpuKernels _kernels = null!;

    /// <summary>Threads the kernels use (−1: every core).</summary>
    [Params(-1)]
    public int Threads { get; set; }

    /// <summary>Allocates and fills the inputs once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _kernels = new CpuKernels(Threads);
        var random = new System.Random(20240501);
        _stacked = new float[Models * Length];
        for (int i = 0; i < _stacked.Length; i++)
            _stacked[i] = (float)(random.NextDouble() - 0.5) * 0.01f;
        _weights = [0.5f, 0.3f, 0.2f];
        _pristine = _stacked.AsSpan(0, Length).ToArray();
        _work = new float[Length];
        _output = new float[Length];
        _packed = new byte[Length / 8];
        _pristine.CopyTo(_work, 0);
        _rowWeights = new float[Length / FiberLength];
        _rowBaseWeights = new float[Length / FiberLength];
        for (int r = 0; r < _rowWeights.Length; r++)
        {
            _rowWeights[r] = (float)random.NextDouble();
            _rowBaseWeights[r] = 1f - _rowWeights[r];
        }
    }

    /// <summary>Restores the input of in-place kernels.</summary>
    [IterationSetup(Targets = [nameof(KeepTopK), nameof(KeepMagnitudeBand), nameof(DropAndRescale), nameof(ScaleFromBase),
        nameof(AxpbyRows), nameof(SampleByMagnitudeRank), nameof(KeepImportantChanges)])]
    public void RestoreInput() => _pristine.CopyTo(_work, 0);

    /// <summary>Baseline: copy one tensor (64 MiB) with the kernels' chunking and threads.</summary>
    [Benchmark(Baseline = true)]
    [InputBytes(Length * sizeof(float))]
    public void MemoryCopy() => ChunkedCopy(_pristine, _output, _kernels.MaxDegreeOfParallelism);

    /// <summary>output = Σ w_k·x_k over K = 3 tensors.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void WeightedSum() => _kernels.WeightedSum(_stacked, _weights, _output);

    /// <summary>TIES sign election and disjoint mean over K = 3 tensors.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void SignConsensusMerge() => _kernels.SignConsensusMerge(_stacked, _weights, SignElection.Sum, true, _output);

    /// <summary>Top 20 % by magnitude, in place.</summary>
    [Benchmark]
    [InputBytes(Length * sizeof(float))]
    public TopKSelection KeepTopK() => _kernels.KeepTopK(_work, Length / 5);

    /// <summary>Breadcrumbs band: drop the bottom 70 % and top 1 %, in place.</summary>
    [Benchmark]
    [InputBytes(Length * sizeof(float))]
    public void KeepMagnitudeBand() => _kernels.KeepMagnitudeBand(_work, Length / 10 * 7, Length / 100);

    /// <summary>MagMax: per element the largest magnitude of K = 3 tensors.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void SelectLargestMagnitude() => _kernels.SelectLargestMagnitude(_stacked, _output);

    /// <summary>TALL mask of one task against τ_MTL (the second row), packed to bits.</summary>
    [Benchmark]
    [InputBytes(2 * Length * sizeof(float))]
    public long TallMask() => _kernels.TallMask(_stacked.AsSpan(0, Length), _stacked.AsSpan(Length, Length), 0.4f, _packed);

    /// <summary>TALL restore: base + τ_MTL where the packed mask (from the last TallMask run, or zeros) is set.</summary>
    [Benchmark]
    [InputBytes(2 * Length * sizeof(float) + Length / 8)]
    public void TallRestore() => _kernels.TallRestore(_pristine, _stacked.AsSpan(Length, Length), _packed, _output);

    /// <summary>Consensus (TALL, k = 2) merge of K = 3 task vectors.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void ConsensusMerge() => _kernels.ConsensusMerge(_stacked, _weights, 2, _output);

    /// <summary>Fisher-weighted average of K = 3 models (the stacked rows serve as Fisher tensors too).</summary>
    [Benchmark]
    [InputBytes(2 * Models * Length * sizeof(float))]
    public void FisherMerge() => _kernels.FisherMerge(_stacked, _stacked, _weights, 1e-8f, _output);

    /// <summary>NearSwap of one tensor against a base.</summary>
    [Benchmark]
    [InputBytes(2 * Length * sizeof(float))]
    public void NearSwap() => _kernels.NearSwap(_pristine, _stacked.AsSpan(Length, Length), 0.001f, _output);

    /// <summary>RAM merge of K = 3 task vectors onto a base.</summary>
    [Benchmark]
    [InputBytes((Models + 1) * Length * sizeof(float))]
    public void RamMerge() => _kernels.RamMerge(_stacked, _pristine, _weights, 1e-3f, _output);

    /// <summary>RAM+'s shared/unique contribution counts over K = 3 task vectors.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void RamContributionCounts() => _kernels.RamContributionCounts(_stacked, 1e-3f, _shared, _unique);

    /// <summary>SCE's variance across K = 3 tensors (float64 per element) and the count of non-zero variances.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public long VarianceAcrossRows() => _kernels.VarianceAcrossRows(_stacked, _output);

    /// <summary>SCE's erase (sign of the plain sum) and weighted mix of K = 3 task vectors.</summary>
    [Benchmark]
    [InputBytes(Models * Length * sizeof(float))]
    public void SignErasedMix() => _kernels.SignErasedMix(_stacked, _weights, 1e-6f, _output);

    /// <summary>DARE with density 0.3 and rescaling, in place.</summary>
    [Benchmark]
    [InputBytes(Length * sizeof(float))]
    public void DropAndRescale() => _kernels.DropAndRescale(_work, 0.3f, true, new PhiloxKey(42, 0x1234, 1));

    /// <summary>LiNeS: θ_base + s·(θ − θ_base), in place.</summary>
    [Benchmark]
    [InputBytes(2 * Length * sizeof(float))]
    public void ScaleFromBase() => _kernels.ScaleFromBase(_pristine, _work, 0.5f);

    /// <summary>Model Stock's filter-wise mix: a per-row axpby with the base over rows of 4096, in place.</summary>
    [Benchmark]
    [InputBytes(2 * Length * sizeof(float))]
    public void AxpbyRows() => _kernels.AxpbyRows(_work, _rowWeights, _pristine, _rowBaseWeights);

    /// <summary>Arcee Fusion's gate: base + Δ where the score clears the threshold, in place over the scores.</summary>
    [Benchmark]
    [InputBytes(3 * Length * sizeof(float))]
    public void KeepImportantChanges() => _kernels.KeepImportantChanges(_pristine, _stacked.AsSpan(Length, Length), 0f, _work);

    /// <summary>Arcee Fusion's importance: two float64 softmaxes and a KL divergence per row of 4096.</summary>
    [Benchmark]
    [InputBytes(2 * Length * sizeof(float))]
    public void SoftmaxDivergenceScores() => _kernels.SoftmaxDivergenceScores(_stacked.AsSpan(Length, Length), _pristine, FiberLength, _output);

    /// <summary>DELLA's MagPrune (a sort per fiber of 4096, Philox draws, rescaling), in place.</summary>
    [Benchmark]
    [InputBytes(Length * sizeof(float))]
    public void SampleByMagnitudeRank() =>
        _kernels.SampleByMagnitudeRank(_work, FiberLength, 1, 0.4f, 0.1f, 0.5f, true, new PhiloxKey(42, 0x1234, 1));

    internal static void ChunkedCopy(float[] source, float[] destination, int threads)
    {
        const int chunk = 1 << 16;
        int chunks = (source.Length + chunk - 1) / chunk;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads }, c =>
        {
            int start = c * chunk;
            int size = Math.Min(chunk, source.Length - start);
            source.AsSpan(start, size).CopyTo(destination.AsSpan(start, size));
        });
    }
}

/// <summary>Radix-select top-k against the obvious alternative: sort 16M (key, index) pairs, keep the first k.</summary>
[Config(typeof(InputBandwidthConfig))]
public class TopKVersusSortBenchmarks
{
    private const int Length = 16 << 20;

    private float[] _pristine = [];
    private float[] _work = [];
    private uint[] _keys = [];
    private int[] _indices = [];
    private CpuKernels _kernels = null!;

    /// <summary>Allocates and fills the input once.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _kernels = new CpuKernels();
        var random = new System.Random(7);
        _pristine = new float[Length];
        for (int i = 0; i < Length; i++)
            _pristine[i] = (float)(random.NextDouble() - 0.5);
        _work = new float[Length];
        _keys = new uint[Length];
        _indices = new int[Length];
    }

    /// <summary>Restores the input.</summary>
    [IterationSetup]
    public void RestoreInput() => _pristine.CopyTo(_work, 0);

    /// <summary>Radix select (this library).</summary>
    [Benchmark(Baseline = true)]
    [InputBytes(Length * sizeof(float))]
    public TopKSelection RadixSelect() => _kernels.KeepTopK(_work, Length / 5);

    /// <summary>Array.Sort of descending keys with their indices, then zero all but the first k.</summary>
    [Benchmark]
    [InputBytes(Length * sizeof(float))]
    public void SortKeysAndIndices()
    {
        for (int i = 0; i < Length; i++)
        {
            // Complemented key: an ascending sort gives descending magnitude.
            _keys[i] = ~((uint)BitConverter.SingleToInt32Bits(_work[i]) & 0x7FFFFFFFu);
            _indices[i] = i;
        }

        Array.Sort(_keys, _indices);
        for (int j = Length / 5; j < Length; j++)
            _work[_indices[j]] = 0f;
    }
}

/// <summary>Bytes of input a benchmark reads per invocation (for the "Input GB/s" column).</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class InputBytesAttribute(long bytes) : Attribute
{
    /// <summary>Bytes read per invocation.</summary>
    public long Bytes { get; } = bytes;
}

/// <summary>Adds the "Input GB/s" column.</summary>
public sealed class InputBandwidthConfig : ManualConfig
{
    /// <summary>Creates the config.</summary>
    public InputBandwidthConfig() => AddColumn(new InputBandwidthColumn());
}

/// <summary>Input bytes (from <see cref="InputBytesAttribute"/>) divided by the mean time, in GB/s (10^9 bytes).</summary>
public sealed class InputBandwidthColumn : IColumn
{
    /// <inheritdoc />
    public string Id => nameof(InputBandwidthColumn);
    /// <inheritdoc />
    public string ColumnName => "Input GB/s";
    /// <inheritdoc />
    public bool AlwaysShow => true;
    /// <inheritdoc />
    public ColumnCategory Category => ColumnCategory.Custom;
    /// <inheritdoc />
    public int PriorityInCategory => 0;
    /// <inheritdoc />
    public bool IsNumeric => true;
    /// <inheritdoc />
    public UnitType UnitType => UnitType.Dimensionless;
    /// <inheritdoc />
    public string Legend => "Bytes of input read per second, 10^9 bytes/s";

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) =>
        GetValue(summary, benchmarkCase, SummaryStyle.Default);

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var bytes = (InputBytesAttribute?)Attribute.GetCustomAttribute(
            benchmarkCase.Descriptor.WorkloadMethod, typeof(InputBytesAttribute));
        long? inputBytes = bytes?.Bytes;
        // MethodBenchmarks: the bytes depend on the method parameter (how many models, whether a base).
        if (inputBytes is null && benchmarkCase.Descriptor.Type == typeof(MethodBenchmarks)
            && benchmarkCase.Parameters["Method"] is string method)
            inputBytes = MethodBenchmarks.InputBytes(method);
        double? meanNanoseconds = summary[benchmarkCase]?.ResultStatistics?.Mean;
        if (inputBytes is null || meanNanoseconds is not > 0)
            return "-";
        return (inputBytes.Value / meanNanoseconds.Value).ToString("F2", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;

    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
