using Weld.Kernels.Cpu;
using Weld.Kernels.Cuda;

namespace Weld.Kernels;

/// <summary>Chooses where matrix products run from a device name, with the forms of <see cref="KernelBackends.Select"/>.</summary>
public static class GemmBackends
{
    /// <summary>Creates the <see cref="IGemm"/> for <paramref name="device"/> (auto | cpu | cuda | cuda:N).</summary>
    /// <param name="device">The device name.</param>
    /// <param name="threads">CPU threads (−1: all cores).</param>
    /// <param name="reason">One line saying what was chosen and, for auto on the CPU, why not CUDA.</param>
    /// <returns>The GEMM; dispose it when it is <see cref="IDisposable"/> (the cuBLAS one is).</returns>
    /// <exception cref="ArgumentException"><paramref name="device"/> is not a device name.</exception>
    /// <exception cref="CudaException">CUDA was asked for explicitly and cannot start, or cuBLAS is missing.</exception>
    public static IGemm Select(string device, int threads, out string reason)
    {
        IMergeKernels kernels = KernelBackends.Select(device, threads, out reason);
        if (kernels is not CudaKernels cuda) return new CpuGemm(threads);
        try
        {
            return new CudaGemm(cuda, ownsKernels: true);
        }
        catch (CudaException error) when (device == "auto")
        {
            cuda.Dispose();
            reason = $"cpu (auto: cuBLAS did not start: {error.Message.Split('\n', 2)[0]})";
            return new CpuGemm(threads);
        }
        catch
        {
            cuda.Dispose();
            throw;
        }
    }
}
