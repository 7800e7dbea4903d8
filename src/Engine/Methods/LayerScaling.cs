using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// The LiNeS post-step (Wang et al. 2024): scales a merged tensor's task vector against the base,
/// θ = θ_base + s · (θ_merged − θ_base). Elementwise, so a chunked tensor gets the bytes of a whole one.
/// </summary>
public static class LayerScaling
{
    /// <summary>
    /// Replaces <paramref name="merged"/> by θ_base + <paramref name="scale"/> · (θ_merged − θ_base), each element
    /// in float32 in that order (<see cref="IMergeKernels.ScaleFromBase"/>). s = 1 leaves the tensor untouched: the
    /// round trip through the difference is not exact in floating point, and LiNeS with α = 1, β = 0 must be the
    /// plain merge bit for bit.
    /// </summary>
    /// <param name="kernels">The backend that does the arithmetic.</param>
    /// <param name="baseline">θ_base, as long as <paramref name="merged"/>.</param>
    /// <param name="merged">θ_merged on entry, the scaled tensor on return.</param>
    /// <param name="scale">s.</param>
    public static void Apply(IMergeKernels kernels, ReadOnlySpan<float> baseline, Span<float> merged, float scale)
    {
        if (scale == 1f) return;
        if (baseline.Length != merged.Length)
            throw new ArgumentException($"the base has {baseline.Length} elements, the merged tensor {merged.Length}", nameof(baseline));
        kernels.ScaleFromBase(baseline, merged, scale);
    }
}
