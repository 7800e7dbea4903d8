using Weld.Kernels.Cuda;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>The CUDA backend shared by the GPU tests (one context and one compiled module per test run).</summary>
internal static class CudaBackend
{
    private static readonly Lazy<string?> s_unavailable = new(() => CudaKernels.IsAvailable(0, out string reason) ? null : reason);
    private static readonly Lazy<CudaKernels> s_instance = new(() => new CudaKernels(0));

    /// <summary>Why the GPU tests cannot run here ("no CUDA device: libcuda.so.1 not found", …), or null.</summary>
    public static string? Unavailable => s_unavailable.Value;

    /// <summary>The backend on device 0.</summary>
    public static CudaKernels Instance => s_instance.Value;
}

/// <summary>A fact that needs a CUDA device; skipped with the reason when there is none.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device is usable.</summary>
    public CudaFactAttribute()
    {
        if (CudaBackend.Unavailable is { } reason)
            Skip = reason;
    }
}

/// <summary>A theory that needs a CUDA device; skipped with the reason when there is none.</summary>
public sealed class CudaTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when no device is usable.</summary>
    public CudaTheoryAttribute()
    {
        if (CudaBackend.Unavailable is { } reason)
            Skip = reason;
    }
}
