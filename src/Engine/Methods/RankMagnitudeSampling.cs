using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// DELLA's MagPrune as mergekit's <c>della_magprune</c> computes it, over one task vector:
/// <code>
///   r_i = rank of |δ_i| among its fiber along dim 1 (1 = smallest; a 1-D tensor is one fiber)
///   p_i = (density − ε) + ((r_i − 1) / (len − 1)) · 2 · ε          (float32, mergekit's operation order)
///   δ_i ← δ_i  if u_i &lt; p_i  else 0,    u_i = Philox uniform of element i (the DARE stream)
/// </code>
/// </summary>
/// <remarks>
/// Equal magnitudes are ranked by position (a stable sort; torch's argsort leaves their order unspecified), with the
/// magnitude key <c>bits(x) &amp; 0x7FFFFFFF</c> so NaN ranks highest as in torch. A fiber of one element has no rank
/// spread (mergekit divides 0 by 0 and fails); Weld gives it the midpoint p = density. Fibers are independent, so
/// they run in parallel (<see cref="IMergeKernels.SampleByMagnitudeRank"/>) and the result does not depend on the thread count.
/// </remarks>
internal static class RankMagnitudeSampling
{
    /// <summary>Applies MagPrune to row <paramref name="row"/> of <paramref name="inputs"/> in place.</summary>
    /// <param name="inputs">The tensor's inputs (shape, random key, tensor name for messages).</param>
    /// <param name="row">Which task vector.</param>
    /// <param name="density">Mean keep probability; ≥ 1 leaves the row unchanged.</param>
    /// <param name="epsilon">Half the spread of the keep probabilities.</param>
    /// <param name="divideByProbability">Divide each kept entry by its p_i (the paper's rescale) instead of nothing.</param>
    public static void Apply(TensorMergeInputs inputs, int row, double density, double epsilon, bool divideByProbability)
    {
        if (density >= 1) return;
        Span<float> values = inputs.Row(row);
        if (density <= 0)
        {
            values.Clear();
            return;
        }
        Validate(inputs.TensorName, inputs.ModelIndices[row], density, epsilon);

        var (outer, length, inner) = Fibers(inputs.Shape, values.Length);
        if (length == 0 || inner == 0)
            return; // an empty tensor: no fibers
        if ((long)outer * length * inner != values.Length)
            throw new WeldException(
                $"{inputs.TensorName}: della samples along dim 1 of the whole tensor, but shape [{string.Join(", ", inputs.Shape)}] "
                + $"does not hold the {values.Length} elements given");
        Sample(inputs.Kernels, values, length, inner, density, epsilon, divideByProbability, inputs.RandomKey(row), 0);
    }

    /// <summary>
    /// <see cref="Apply"/> with the L1 norms of the row before and after it, summed block by
    /// <see cref="TensorMergeInputs.ChunkAlignment"/> block as <c>TaskVectorMerge</c>'s L1 norm sums them (same bits),
    /// each block sampled between its two norms while it is in cache. False (nothing done) unless
    /// 0 &lt; density &lt; 1 and the tensor's [dim 1 × rest] slices tile every block; the caller then takes the steps one
    /// by one.
    /// </summary>
    public static bool TryApplyWithL1Norms(TensorMergeInputs inputs, int row, double density, double epsilon,
        out double normBefore, out double normAfter)
    {
        normBefore = normAfter = 0;
        if (density is <= 0 or >= 1)
            return false;
        Span<float> values = inputs.Row(row);
        Validate(inputs.TensorName, inputs.ModelIndices[row], density, epsilon);
        var (outer, length, inner) = Fibers(inputs.Shape, values.Length);
        long slab = (long)length * inner;
        if (slab == 0 || outer * slab != values.Length || TensorMergeInputs.ChunkAlignment % slab != 0)
            return false;
        IMergeKernels kernels = inputs.Kernels;
        PhiloxKey key = inputs.RandomKey(row);
        for (int start = 0; start < values.Length; start += TensorMergeInputs.ChunkAlignment)
        {
            var (before, after) = kernels.SampleByMagnitudeRankWithNorms(
                values.Slice(start, Math.Min(TensorMergeInputs.ChunkAlignment, values.Length - start)), length, inner,
                (float)(density - epsilon), (float)epsilon, (float)density, false, key, start);
            normBefore += before;
            normAfter += after;
        }
        return true;
    }

    /// <summary>
    /// Samples whole [dim 1 × rest] slices: <paramref name="values"/> starts at tensor index
    /// <paramref name="firstIndex"/>, a multiple of length · inner (the draws are keyed by tensor index).
    /// </summary>
    internal static void Sample(IMergeKernels kernels, Span<float> values, int length, int inner, double density, double epsilon,
        bool divideByProbability, PhiloxKey key, long firstIndex) =>
        kernels.SampleByMagnitudeRank(values, length, inner, (float)(density - epsilon), (float)epsilon, (float)density,
            divideByProbability, key, firstIndex);

    /// <summary>Throws unless density ± epsilon lies inside (0, 1) (for 0 &lt; density &lt; 1).</summary>
    internal static void Validate(string tensorName, int modelIndex, double density, double epsilon)
    {
        if (density + epsilon >= 1 || density - epsilon <= 0)
            throw new WeldException(
                $"{tensorName}: model {modelIndex}: della needs density ± epsilon inside (0, 1), "
                + $"got density {density} and epsilon {epsilon}");
    }

    /// <summary>Splits a tensor into fibers along dim 1: (count before, fiber length, stride).</summary>
    internal static (int Outer, int Length, int Inner) Fibers(long[] shape, int elementCount)
    {
        if (shape.Length < 2) return (1, elementCount, 1);
        int outer = (int)shape[0], length = (int)shape[1];
        int inner = outer == 0 || length == 0 ? 0 : elementCount / (outer * length);
        return (outer, length, inner);
    }

    /// <summary>Fiber length and stride along dim 1 of a tensor of <paramref name="elementCount"/> elements (any size).</summary>
    internal static (long Length, long Inner) FiberLayout(long[] shape, long elementCount)
    {
        if (shape.Length < 2) return (elementCount, 1);
        long outer = shape[0], length = shape[1];
        return (length, outer == 0 || length == 0 ? 0 : elementCount / (outer * length));
    }
}
