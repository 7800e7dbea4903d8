using BenchmarkDotNet.Attributes;
using Weld.Engine.Alignment;

namespace Weld.Bench;

/// <summary>
/// The linear assignment solver on dense random score matrices of the sizes weight matching meets (hidden and
/// intermediate widths): <c>dotnet run -c Release --project bench/Weld.Bench -- --filter '*AlignmentBenchmarks*'</c>.
/// </summary>
/// <remarks>
/// Uniform random scores are a hard case for shortest augmenting paths (no structure to exploit); similarity
/// matrices of two trained models have a strong diagonal-like structure and usually solve faster.
/// </remarks>
[MemoryDiagnoser]
public class AlignmentBenchmarks
{
    private double[] _score = [];

    /// <summary>Rows (= columns) of the score matrix.</summary>
    [Params(1024, 4096)]
    public int N { get; set; }

    /// <summary>Fills the score matrix with seeded uniform values.</summary>
    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(1234);
        _score = new double[N * N];
        for (int i = 0; i < _score.Length; i++) _score[i] = random.NextDouble();
    }

    /// <summary>One exact solve.</summary>
    [Benchmark]
    public int[] SolveRandom() => LinearAssignment.Solve(_score, N);
}
