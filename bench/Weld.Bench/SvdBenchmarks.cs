using BenchmarkDotNet.Attributes;
using Weld.Engine.Compression;

namespace Weld.Bench;

/// <summary>
/// Rank-64 truncated SVD of a 4096 × 4096 float32 matrix (a Llama-7B attention projection) by randomized range
/// finding against MathNet's full double-precision SVD:
/// <c>dotnet run -c Release --project bench/Weld.Bench -- --filter '*SvdBenchmarks*'</c>.
/// </summary>
/// <remarks>
/// The matrix has a slowly decaying spectrum (σ_i ∝ 1/√(i+1) shaped by a random low-rank-plus-noise
/// construction), the hard case for the range finder. The full SVD is O(n³) and takes minutes at this size.
/// </remarks>
[MemoryDiagnoser]
public class SvdBenchmarks
{
    private const int Size = 4096;
    private const int Rank = 64;
    private float[] _matrix = [];

    /// <summary>Fills the matrix: a rank-256 product with decaying column scales plus small uniform noise.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1234);
        const int inner = 256;
        var left = new float[Size * inner];
        var right = new float[inner * Size];
        for (int i = 0; i < left.Length; i++) left[i] = (float)(random.NextDouble() * 2 - 1) / MathF.Sqrt(1 + i % inner);
        for (int i = 0; i < right.Length; i++) right[i] = (float)(random.NextDouble() * 2 - 1);
        _matrix = new float[Size * Size];
        Weld.Kernels.Cpu.Gemm.Multiply(left, right, _matrix, Size, inner, Size);
        for (int i = 0; i < _matrix.Length; i++) _matrix[i] += (float)(random.NextDouble() - 0.5) * 1e-3f;
    }

    /// <summary>Randomized truncated SVD (p = 10, q = 2), all cores.</summary>
    [Benchmark(Baseline = true)]
    public TruncatedSvd Randomized() => RandomizedSvd.Compute(_matrix, Size, Size, Rank, seed: 1);

    /// <summary>MathNet full SVD, truncated to the same rank.</summary>
    [Benchmark]
    public TruncatedSvd MathNetFull() => ExactSvd.Compute(_matrix, Size, Size, Rank);
}
