using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Tests;

/// <summary>
/// The <c>--device</c> values a GPU test runs on: <c>ilgpu-cpu</c> (the GPU kernels on ILGPU's CPU accelerator) in
/// every test run, and <c>cuda</c> when ILGPU finds a CUDA device. Tests never skip for want of a GPU.
/// </summary>
public static class GpuTestDevices
{
    /// <summary>The emulator: runs everywhere.</summary>
    public const string Emulated = "ilgpu-cpu";

    /// <summary>CUDA device 0, when present.</summary>
    public const string Cuda = "cuda";

    private static readonly Lazy<bool> s_cuda = new(() => GpuDevice.ProbeCuda(0, out _));

    /// <summary>Whether ILGPU finds CUDA device 0 here.</summary>
    public static bool HasCuda => s_cuda.Value;

    /// <summary><c>ilgpu-cpu</c>, plus <c>cuda</c> when present.</summary>
    public static IReadOnlyList<string> Names => HasCuda ? [Emulated, Cuda] : [Emulated];

    /// <summary><see cref="Names"/> as theory data.</summary>
    public static TheoryData<string> All
    {
        get
        {
            var data = new TheoryData<string>();
            foreach (string device in Names)
                data.Add(device);
            return data;
        }
    }
}
