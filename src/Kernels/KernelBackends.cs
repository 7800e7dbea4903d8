using System.Globalization;
using ILGPU.Runtime;
using Weld.Kernels.Cpu;
using Weld.Kernels.Gpu;

namespace Weld.Kernels;

/// <summary>
/// Chooses the kernel backend from a device name: <c>cpu</c>; <c>cuda</c> or <c>cuda:N</c> (the ILGPU kernels on a
/// CUDA device); <c>ilgpu-cpu</c> (the very same ILGPU kernels on ILGPU's CPU accelerator: slow, for checking kernels
/// and recipes without a GPU); <c>auto</c> (CUDA device 0 when ILGPU finds one and it starts, else the CPU backend).
/// </summary>
public static class KernelBackends
{
    /// <summary>The device names, for messages: "auto, cpu, cuda[:N] or ilgpu-cpu".</summary>
    public const string Names = "auto, cpu, cuda[:N] or ilgpu-cpu";

    /// <summary>The emulator's device name.</summary>
    public const string EmulatedCpu = "ilgpu-cpu";

    /// <summary>Threads per emulated warp of <c>ilgpu-cpu</c>.</summary>
    /// <remarks>
    /// 4 threads a warp and 8 warps a group (32 threads, an NVIDIA warp's worth): groups big enough to exercise the
    /// block reductions across warps, small enough that a launch (every emulated thread is an OS thread that meets
    /// the others at each barrier) stays around a millisecond.
    /// </remarks>
    public const int EmulatedWarpSize = 4;

    /// <summary>Warps per emulated group of <c>ilgpu-cpu</c> (see <see cref="EmulatedWarpSize"/>).</summary>
    public const int EmulatedWarpsPerGroup = 8;

    /// <summary>Creates the backend for <paramref name="device"/>.</summary>
    /// <param name="device">auto | cpu | cuda | cuda:N | ilgpu-cpu (case-sensitive, as the CLI documents it).</param>
    /// <param name="threads">CPU threads (−1: all cores) of the CPU backend (also when auto falls back to it).</param>
    /// <param name="reason">One line saying what was chosen and, for auto on the CPU, why not CUDA.</param>
    /// <returns>The backend; dispose it when it is <see cref="IDisposable"/> (the GPU one is).</returns>
    /// <exception cref="ArgumentException"><paramref name="device"/> is not one of the forms above.</exception>
    /// <exception cref="InvalidOperationException">CUDA was asked for explicitly and there is no such device (the message says why).</exception>
    /// <exception cref="AcceleratorException">CUDA was asked for explicitly and the device did not start.</exception>
    public static IMergeKernels Select(string device, int threads, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device == "cpu")
        {
            reason = "cpu (requested)";
            return new CpuKernels(threads);
        }
        if (device == EmulatedCpu)
        {
            var emulated = new GpuKernels(CreateEmulatedCpu());
            reason = $"{EmulatedCpu} (requested; ILGPU's CPU accelerator, warp {EmulatedWarpSize} x {EmulatedWarpsPerGroup} warps: the GPU kernels emulated, slow)";
            return emulated;
        }
        if (device == "auto")
        {
            if (GpuDevice.ProbeCuda(0, out string missing))
            {
                try
                {
                    var cuda = new GpuKernels(GpuDevice.Cuda(0));
                    reason = $"{cuda.Name} ({cuda.Device.DeviceName}, auto)";
                    return cuda;
                }
                catch (Exception error) when (error is AcceleratorException or InvalidOperationException or NotSupportedException)
                {
                    // auto never fails for want of CUDA: a device that is present but cannot start (a driver too
                    // old for the PTX, no memory left) still leaves the CPU.
                    missing = $"CUDA device 0 did not start: {FirstLine(error.Message)}";
                }
            }
            reason = $"cpu (auto: {missing})";
            return new CpuKernels(threads);
        }
        if (TryParseCuda(device, out int ordinal))
        {
            if (!GpuDevice.ProbeCuda(ordinal, out string missing))
                throw new InvalidOperationException(missing);
            var cuda = new GpuKernels(GpuDevice.Cuda(ordinal));
            reason = $"{cuda.Name} ({cuda.Device.DeviceName}, requested)";
            return cuda;
        }
        throw new ArgumentException($"'{device}' is not a device: expected {Names}", nameof(device));
    }

    /// <summary>Whether <paramref name="device"/> is a device name <see cref="Select"/> accepts (it is not opened).</summary>
    /// <param name="device">The device text.</param>
    public static bool IsDeviceName(string device) =>
        device is "auto" or "cpu" or EmulatedCpu || TryParseCuda(device, out _);

    /// <summary>
    /// Whether <paramref name="error"/> is a device failure (ILGPU's accelerator errors: out of device memory, a lost
    /// device, a launch that failed), which the CLI reports naming the device rather than as a crash.
    /// </summary>
    /// <param name="error">The exception a merge or product threw.</param>
    public static bool IsDeviceFailure(Exception error) => error is AcceleratorException;

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

    /// <summary>The accelerator of <c>ilgpu-cpu</c>: warp 4 × 8 warps, one group at a time per core (2 to 8 groups).</summary>
    internal static GpuDevice CreateEmulatedCpu() =>
        GpuDevice.EmulatedCpu(EmulatedWarpSize, EmulatedWarpsPerGroup, Math.Clamp(Environment.ProcessorCount, 2, 8));

    private static string FirstLine(string message) => message.Split('\n', 2)[0].TrimEnd('\r');
}
