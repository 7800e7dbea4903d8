using ILGPU.Runtime;
using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;

namespace Weld.Kernels;

/// <summary>Chooses where matrix products run from a device name, with the forms of <see cref="KernelBackends.Select"/>.</summary>
public static class GemmBackends
{
    /// <summary>Creates the <see cref="IGemm"/> for <paramref name="device"/> (auto | cpu | cuda | cuda:N | ilgpu-cpu).</summary>
    /// <param name="device">The device name.</param>
    /// <param name="threads">CPU threads (−1: all cores).</param>
    /// <param name="reason">One line saying what was chosen and, for auto on the CPU, why not CUDA.</param>
    /// <returns>The GEMM; dispose it when it is <see cref="IDisposable"/> (the GPU one is).</returns>
    /// <exception cref="ArgumentException"><paramref name="device"/> is not a device name.</exception>
    /// <exception cref="InvalidOperationException">CUDA was asked for explicitly and there is no such device.</exception>
    /// <exception cref="AcceleratorException">CUDA was asked for explicitly and the device did not start.</exception>
    public static IGemm Select(string device, int threads, out string reason)
    {
        IMergeKernels kernels = KernelBackends.Select(device, threads, out reason);
        if (kernels is not GpuKernels gpu)
            return new CpuGemm(threads);
        IGemm gemm;
        try
        {
            gemm = CreateGpuGemm(gpu);
        }
        catch
        {
            gpu.Dispose();
            throw;
        }
        reason += $"; products: {((GpuGemm)gemm).Reason}";
        return gemm;
    }

    /// <summary>The GEMM for a GPU device (cuBLAS on CUDA, else the tiled ILGPU kernel); takes ownership of <paramref name="kernels"/>.</summary>
    private static IGemm CreateGpuGemm(GpuKernels kernels) => new GpuGemm(kernels, ownsKernels: true);
}
