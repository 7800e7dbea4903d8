using System.Globalization;
using Weld.Kernels.Cpu;
using Weld.Kernels.Cuda;

namespace Weld.Kernels;

/// <summary>
/// Chooses the kernel backend from a device name: <c>auto</c> (CUDA when libcuda.so.1, a device and NVRTC are found
/// and the device starts, else the CPU), <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.
/// </summary>
public static class KernelBackends
{
    /// <summary>Creates the backend for <paramref name="device"/>.</summary>
    /// <param name="device">auto | cpu | cuda | cuda:N (case-sensitive, as the CLI documents it).</param>
    /// <param name="threads">CPU threads (−1: all cores); also used when auto falls back to the CPU.</param>
    /// <param name="reason">One line saying what was chosen and, for auto on the CPU, why not CUDA.</param>
    /// <returns>The backend; dispose it when it is <see cref="IDisposable"/> (the CUDA one is).</returns>
    /// <exception cref="ArgumentException"><paramref name="device"/> is not one of the forms above.</exception>
    /// <exception cref="CudaException">CUDA was asked for explicitly and cannot start (the message says why).</exception>
    public static IMergeKernels Select(string device, int threads, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device == "cpu")
        {
            reason = "cpu (requested)";
            return new CpuKernels(threads);
        }
        if (device == "auto")
        {
            if (CudaKernels.IsAvailable(0, out string missing))
            {
                try
                {
                    var cuda = new CudaKernels(0);
                    reason = $"{cuda.Name} ({cuda.DeviceName}, auto)";
                    return cuda;
                }
                catch (CudaException error)
                {
                    // auto never fails for want of CUDA: a device that is present but cannot start (a PTX the
                    // driver is too old for, no memory left) still leaves the CPU.
                    string firstLine = error.Message.Split('\n', 2)[0];
                    missing = $"CUDA device 0 did not start: {firstLine}";
                }
            }
            reason = $"cpu (auto: {missing})";
            return new CpuKernels(threads);
        }
        if (TryParseCuda(device, out int ordinal))
        {
            if (!CudaKernels.IsAvailable(ordinal, out string missing))
                throw new CudaException(missing);
            var cuda = new CudaKernels(ordinal);
            reason = $"{cuda.Name} ({cuda.DeviceName}, requested)";
            return cuda;
        }
        throw new ArgumentException($"'{device}' is not a device: expected auto, cpu, cuda or cuda:N", nameof(device));
    }

    /// <summary>Parses <c>cuda</c> (device 0) or <c>cuda:N</c>.</summary>
    /// <param name="device">The device text.</param>
    /// <param name="ordinal">The device index.</param>
    public static bool TryParseCuda(string device, out int ordinal)
    {
        ordinal = 0;
        if (device == "cuda")
            return true;
        return device.StartsWith("cuda:", StringComparison.Ordinal)
            && int.TryParse(device.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out ordinal);
    }
}
