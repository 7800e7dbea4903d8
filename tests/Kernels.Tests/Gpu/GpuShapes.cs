using System.Collections.Concurrent;
using Weld.Kernels.Gpu;
using Xunit;

namespace Weld.Kernels.Tests.Gpu;

/// <summary>
/// The accelerators every GPU kernel test runs on: ILGPU's CPU accelerator in two shapes (always; no GPU needed)
/// and CUDA device 0 when one is present. One backend per shape for the whole run (compiling a kernel is the slow
/// part); calls into one backend are serialised by its lock.
/// </summary>
public static class GpuShapes
{
    /// <summary>4 threads a warp, 4 warps a group (16 threads), 2 groups at a time: cheap launches.</summary>
    public const string SmallWarps = "emulated-warp4x4";

    /// <summary>32 threads a warp (the NVIDIA warp), one warp a group, 2 groups at a time.</summary>
    public const string NvidiaWarp = "emulated-warp32x1";

    /// <summary>The real device, when ILGPU finds one.</summary>
    public const string Cuda = "cuda";

    private static readonly ConcurrentDictionary<string, Lazy<GpuKernels>> s_backends = new();
    private static readonly Lazy<string?> s_cudaMissing = new(() => GpuDevice.ProbeCuda(0, out string reason) ? null : reason);

    /// <summary>Why CUDA tests cannot run here, or null when a device is present.</summary>
    public static string? CudaMissing => s_cudaMissing.Value;

    /// <summary>Every shape to test here: both emulated shapes, plus CUDA when present.</summary>
    public static TheoryData<string> All
    {
        get
        {
            var data = new TheoryData<string> { SmallWarps, NvidiaWarp };
            if (CudaMissing is null)
                data.Add(Cuda);
            return data;
        }
    }

    /// <summary>The backend for <paramref name="shape"/>.</summary>
    public static GpuKernels Get(string shape) =>
        s_backends.GetOrAdd(shape, name => new Lazy<GpuKernels>(() => new GpuKernels(name switch
        {
            SmallWarps => GpuDevice.EmulatedCpu(warpSize: 4, warpsPerGroup: 4, multiprocessors: 2),
            NvidiaWarp => GpuDevice.EmulatedCpu(warpSize: 32, warpsPerGroup: 1, multiprocessors: 2),
            Cuda => GpuDevice.Cuda(0),
            _ => throw new ArgumentException($"unknown shape {name}"),
        }))).Value;
}

/// <summary>A fact that needs a CUDA device; skipped with the reason when ILGPU finds none.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device is usable.</summary>
    public CudaFactAttribute()
    {
        if (GpuShapes.CudaMissing is { } reason)
            Skip = reason;
    }
}
