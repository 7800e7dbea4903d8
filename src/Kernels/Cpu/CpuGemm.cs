namespace Weld.Kernels.Cpu;

/// <summary><see cref="IGemm"/> on the CPU: <see cref="Gemm.Multiply"/>, bit-identical for any thread count.</summary>
/// <param name="maxDegreeOfParallelism">Most threads; -1 for all cores.</param>
public sealed class CpuGemm(int maxDegreeOfParallelism = -1) : IGemm
{
    /// <summary>All cores.</summary>
    public static CpuGemm Default { get; } = new();

    /// <inheritdoc />
    public string Name => "cpu";

    /// <inheritdoc />
    public void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool transposeB = false) =>
        Gemm.Multiply(a, b, c, m, k, n, transposeB, maxDegreeOfParallelism);
}
