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

    /// <summary>
    /// merged[i] = base[i] + Δ·(|Δ|·D ≥ τ ? 1 : 0) with Δ = model[i] − base[i]: the gate of one row's piece, its scores
    /// formed as <see cref="SoftmaxDivergence.Scale"/> forms them.
    /// </summary>
    public static void KeepImportantChanges(float* baseline, float* model, float divergence, float threshold, float* merged, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var limit = new Vector<float>(threshold);
            var d = new Vector<float>(divergence);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> b = Vector.Load(baseline + i);
                Vector<float> change = Vector.Load(model + i) - b;
                Vector<float> gate = Vector.ConditionalSelect(Vector.GreaterThanOrEqual(Vector.Abs(change) * d, limit), Vector<float>.One, Vector<float>.Zero);
                Vector.Store(b + change * gate, merged + i);
            }
        }

        for (; i < count; i++)
        {
            float change = model[i] - baseline[i];
            merged[i] = baseline[i] + change * (MathF.Abs(change) * divergence >= threshold ? 1f : 0f);
        }
    }

    /// <summary>scores[i] = base[i] + (model[i] − base[i])·(scores[i] ≥ τ ? 1 : 0).</summary>
    public static void KeepImportantChanges(float* baseline, float* model, float threshold, float* scores, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var limit = new Vector<float>(threshold);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> b = Vector.Load(baseline + i);
                Vector<float> gate = Vector.ConditionalSelect(Vector.GreaterThanOrEqual(Vector.Load(scores + i), limit), Vector<float>.One, Vector<float>.Zero);
                Vector.Store(b + (Vector.Load(model + i) - b) * gate, scores + i);
            }
        }

        for (; i < count; i++)
            scores[i] = baseline[i] + (model[i] - baseline[i]) * (scores[i] >= threshold ? 1f : 0f);
    }
}
