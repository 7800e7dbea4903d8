using Weld.Kernels.Cuda;
using Xunit;

namespace Weld.Kernels.Tests.Cuda;

/// <summary>
/// A fact that needs NVRTC (no GPU). In CI (<c>CI=true</c>) it always runs, so a missing NVRTC fails the build;
/// elsewhere it is skipped with the reason when NVRTC cannot be loaded.
/// </summary>
public sealed class NvrtcFactAttribute : FactAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NVRTC is missing outside CI.</summary>
    public NvrtcFactAttribute()
    {
        if (!IsCi && !NvrtcCompiler.TryLoad(out string reason))
            Skip = reason + " (install libnvrtc11.2 + libnvrtc-builtins11.8 from Debian non-free, see .ci/run)";
    }

    /// <summary>Whether the tests run under CI (the CI variable is "true").</summary>
    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
}

/// <summary>An NVRTC theory: same skip rule as <see cref="NvrtcFactAttribute"/>.</summary>
public sealed class NvrtcTheoryAttribute : TheoryAttribute
{
    /// <summary>Sets <see cref="FactAttribute.Skip"/> when NVRTC is missing outside CI.</summary>
    public NvrtcTheoryAttribute()
    {
        if (!NvrtcFactAttribute.IsCi && !NvrtcCompiler.TryLoad(out string reason))
            Skip = reason + " (install libnvrtc11.2 + libnvrtc-builtins11.8 from Debian non-free, see .ci/run)";
    }
}
