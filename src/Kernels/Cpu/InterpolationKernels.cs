using System.Numerics;

namespace Weld.Kernels.Cpu;

/// <summary>
/// One chunk of the interpolation kernels: a <see cref="Vector{T}"/> body and a scalar tail with the same operations
/// in the same order (the JIT does not contract to FMA), so the split point never changes a bit.
/// </summary>
internal static unsafe class InterpolationKernels
{
    /// <summary>merged[i] = base[i] + s·(merged[i] − base[i]).</summary>
    public static void ScaleFromBase(float* baseline, float* merged, float scale, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var factor = new Vector<float>(scale);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> b = Vector.Load(baseline + i);
                Vector.Store(b + factor * (Vector.Load(merged + i) - b), merged + i);
            }
        }

        for (; i < count; i++)
            merged[i] = baseline[i] + scale * (merged[i] - baseline[i]);
    }
}
