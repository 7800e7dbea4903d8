using Weld.Kernels;
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
    /// <exception cref="CudaException">The device started but a CUDA or cuBLAS call failed.</exception>
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

/// <summary>Picks the similarity product for a <c>--device</c> value, as <c>weld merge --device</c> picks its kernels.</summary>
public static class SimilarityGemms
{
    /// <summary>
    /// <c>cpu</c>; <c>cuda</c> or <c>cuda:N</c> (fails when that device or cuBLAS is unusable); <c>auto</c>: CUDA
    /// device 0 when usable, else the CPU.
    /// </summary>
    /// <param name="device">The device text.</param>
    /// <param name="reason">One line saying what was chosen and, for auto on the CPU, why not CUDA.</param>
    /// <returns>The product; dispose it when it is <see cref="IDisposable"/> (the CUDA one is).</returns>
    /// <exception cref="WeldException">The device text is malformed, or CUDA was asked for and cannot start.</exception>
    public static ISimilarityGemm Select(string device, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device == "cpu")
        {
            reason = "cpu (requested)";
            return CpuSimilarityGemm.Instance;
        }

        bool auto = device == "auto";
        int ordinal = 0;
        if (!auto && !KernelBackends.TryParseCuda(device, out ordinal))
            throw new WeldException($"--device {device}: expected auto, cpu or cuda[:N]");
        if (!CudaGemm.IsAvailable(ordinal, out string missing))
        {
            if (!auto) throw new WeldException($"--device {device}: {missing}");
            reason = $"cpu (auto: {missing})";
            return CpuSimilarityGemm.Instance;
        }

        try
        {
            var cuda = new CudaSimilarityGemm(ordinal);
            reason = $"{cuda.Description}{(auto ? ", auto" : ", requested")}";
            return cuda;
        }
        catch (CudaException error) when (auto)
        {
            reason = $"cpu (auto: CUDA device 0 did not start: {error.Message.Split('\n', 2)[0]})";
            return CpuSimilarityGemm.Instance;
        }
        catch (CudaException error)
        {
            throw new WeldException($"--device {device}: {error.Message}");
        }
    }
}
