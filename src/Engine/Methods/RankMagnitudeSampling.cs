using Weld.Kernels;
using Weld.Kernels.Random;

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
/// they run in parallel and the result does not depend on the thread count.
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
        if (density + epsilon >= 1 || density - epsilon <= 0)
            throw new WeldException(
                $"{inputs.TensorName}: model {inputs.ModelIndices[row]}: della needs density ± epsilon inside (0, 1), "
                + $"got density {density} and epsilon {epsilon}");

        var (outer, length, inner) = Fibers(inputs.Shape, values.Length);
        float low = (float)(density - epsilon);
        float eps = (float)epsilon;
        PhiloxKey key = inputs.RandomKey(row);
        Memory<float> memory = inputs.Models.Slice(row * inputs.Length, inputs.Length);
        Parallel.For(0, outer * inner,
            () => new ulong[length],
            (fiber, _, order) =>
            {
                SampleFiber(memory.Span, fiber / inner * length * inner + fiber % inner, length, inner, low, eps, key,
                    (float)density, divideByProbability, order);
                return order;
            },
            static _ => { });
    }

    /// <summary>Splits a tensor into fibers along dim 1: (count before, fiber length, stride).</summary>
    internal static (int Outer, int Length, int Inner) Fibers(long[] shape, int elementCount)
    {
        if (shape.Length < 2) return (1, elementCount, 1);
        int outer = (int)shape[0], length = (int)shape[1];
        int inner = outer == 0 || length == 0 ? 0 : elementCount / (outer * length);
        return (outer, length, inner);
    }

    private static void SampleFiber(Span<float> values, int first, int length, int stride, float low, float epsilon,
        PhiloxKey key, float density, bool divideByProbability, ulong[] order)
    {
        // Sort (magnitude key, position) pairs: the sorted position of an element is its rank − 1.
        for (int r = 0; r < length; r++)
        {
            uint magnitude = BitConverter.SingleToUInt32Bits(values[first + r * stride]) & 0x7FFFFFFFu;
            order[r] = ((ulong)magnitude << 32) | (uint)r;
        }
        Array.Sort(order, 0, length);
        float span = length - 1;
        for (int s = 0; s < length; s++)
        {
            int index = first + (int)(uint)order[s] * stride;
            float p = length == 1 ? density : low + s / span * 2f * epsilon;
            float value = values[index];
            bool keep = Philox4x32.ToUniform(Philox4x32.ElementBits(key, index)) < p;
            values[index] = keep ? (divideByProbability ? value / p : value) : 0f;
        }
    }
}
