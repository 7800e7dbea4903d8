using Weld.Kernels;
using Weld.Kernels.Cpu;

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

/// <summary>
/// A product on any <see cref="IGemm"/> (the GPU devices' GEMM from <see cref="GemmBackends"/>); owns it when it
/// is disposable.
/// </summary>
public sealed class GemmSimilarity : ISimilarityGemm, IDisposable
{
    private readonly IGemm _gemm;

    /// <summary>Runs the products on <paramref name="gemm"/>.</summary>
    /// <param name="gemm">The GEMM; disposed with this when it is <see cref="IDisposable"/>.</param>
    /// <param name="description">Where it runs, for logs.</param>
    public GemmSimilarity(IGemm gemm, string description)
    {
        ArgumentNullException.ThrowIfNull(gemm);
        _gemm = gemm;
        Description = description;
    }

    /// <inheritdoc />
    public string Description { get; }

    /// <inheritdoc />
    public void MultiplyTransposed(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n) =>
        _gemm.Multiply(a, b, c, m, k, n, transposeB: true);

    /// <inheritdoc />
    public void Dispose() => (_gemm as IDisposable)?.Dispose();
}

/// <summary>Picks the similarity product for a <c>--device</c> value, as <c>weld merge --device</c> picks its kernels.</summary>
public static class SimilarityGemms
{
    /// <summary>
    /// <c>cpu</c>; <c>cuda</c> or <c>cuda:N</c> (fails when that device is unusable); <c>ilgpu-cpu</c> (the GPU GEMM
    /// on ILGPU's CPU accelerator: slow, for checking without a GPU); <c>auto</c>: CUDA device 0 when usable, else the CPU.
    /// </summary>
    /// <param name="device">The device text.</param>
    /// <param name="reason">One line saying what was chosen and, for auto on the CPU, why not CUDA.</param>
    /// <returns>The product; dispose it when it is <see cref="IDisposable"/> (the GPU one is).</returns>
    /// <exception cref="WeldException">The device text is malformed, or CUDA was asked for and cannot start.</exception>
    public static ISimilarityGemm Select(string device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device == "cpu")
        {
            reason = "cpu (requested)";
            return CpuSimilarityGemm.Instance;
        }
        IGemm gemm;
        try
        {
            gemm = GemmBackends.Select(device, -1, out reason);
        }
        catch (ArgumentException)
        {
            throw new WeldException($"--device {device}: expected {KernelBackends.Names}");
        }
        catch (Exception error) when (error is InvalidOperationException || KernelBackends.IsDeviceFailure(error))
        {
            throw new WeldException($"--device {device}: {error.Message.Split('\n', 2)[0]}");
        }
        if (gemm is CpuGemm)
            return CpuSimilarityGemm.Instance;
        return new GemmSimilarity(gemm, reason);
    }
}
