using Weld.Kernels.Cpu;
using Weld.Kernels.Cuda;

namespace Weld.Engine.Alignment;

/// <summary>The matrix product weight matching spends its time in: <c>C = A·Bᵀ</c> over float32 tiles.</summary>
public interface ISimilarityGemm
{
    /// <summary>Where the product runs, for logs ("cpu", "cuda:0 (NVIDIA H100 …)").</summary>
    string Description { get; }

    /// <summary>
    /// Computes <c>C = A·Bᵀ</c>, all row-major: A is <paramref name="m"/> × <paramref name="k"/>, B is
    /// <paramref name="n"/> × <paramref name="k"/>, C is <paramref name="m"/> × <paramref name="n"/> (overwritten).
    /// </summary>
    void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n);
}

/// <summary>The CPU product: the blocked SIMD <see cref="Gemm"/> over all cores (bit-identical for any core count).</summary>
public sealed class CpuSimilarityGemm : ISimilarityGemm
{
    /// <summary>The shared instance.</summary>
    public static CpuSimilarityGemm Instance { get; } = new();

    private CpuSimilarityGemm()
    {
    }

    /// <inheritdoc />
    public string Description => "cpu";

    /// <inheritdoc />
    public void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n) =>
        Gemm.Multiply(a, b, c, m, k, n, transposeB: true);
}

/// <summary>The GPU product: cuBLAS sgemm on one CUDA device (<see cref="CudaGemm"/>).</summary>
public sealed class CudaSimilarityGemm : ISimilarityGemm, IDisposable
{
    private readonly CudaGemm _gemm;

    /// <summary>Opens device <paramref name="ordinal"/>.</summary>
    /// <exception cref="WeldException">No usable CUDA device or cuBLAS (the message says why).</exception>
    public CudaSimilarityGemm(int ordinal)
    {
        if (!CudaGemm.IsAvailable(ordinal, out string reason)) throw new WeldException($"--device cuda:{ordinal}: {reason}");
        _gemm = new CudaGemm(ordinal);
    }

    /// <inheritdoc />
    public string Description => $"cuda:{_gemm.Ordinal} ({_gemm.DeviceName}, cuBLAS sgemm)";

    /// <inheritdoc />
    public void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n) =>
        _gemm.MultiplyTransposed(a, b, c, m, k, n);

    /// <inheritdoc />
    public void Dispose() => _gemm.Dispose();
}
