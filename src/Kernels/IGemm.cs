namespace Weld.Kernels;

/// <summary>
/// Single-precision matrix multiplication on some device, row-major in and out of host memory: the products that
/// dominate randomized SVD. <see cref="Cpu.CpuGemm"/> runs Weld's blocked SIMD <see cref="Cpu.Gemm"/>;
/// the GPU devices (<c>cuda</c>, <c>ilgpu-cpu</c>) run an ILGPU GEMM (<see cref="GemmBackends"/>).
/// </summary>
public interface IGemm
{
    /// <summary>Where the products run, for messages (<c>cpu</c>, <c>cuda:0</c>).</summary>
    string Name { get; }

    /// <summary>Computes <c>C = A·B</c> (or <c>C = A·Bᵀ</c> when <paramref name="transposeB"/>), all row-major.</summary>
    /// <param name="a">A, <paramref name="m"/> × <paramref name="k"/>.</param>
    /// <param name="b">B, <paramref name="k"/> × <paramref name="n"/>; or <paramref name="n"/> × <paramref name="k"/> when <paramref name="transposeB"/>.</param>
    /// <param name="c">C, <paramref name="m"/> × <paramref name="n"/>; overwritten.</param>
    /// <param name="m">Rows of A and C.</param>
    /// <param name="k">Columns of A; the summed dimension.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="transposeB">Whether <paramref name="b"/> holds Bᵀ rather than B.</param>
    void Multiply(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool transposeB = false);
}
