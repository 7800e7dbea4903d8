using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>One fiber of <see cref="IMergeKernels.SampleByMagnitudeRank"/>: a stable sort by magnitude, then the draws.</summary>
internal static unsafe class MagnitudeRankSampling
{
    /// <summary>The keep probabilities of one call (they do not depend on the fiber).</summary>
    public readonly record struct Probabilities(float Low, float Epsilon, float Single, bool Divide);

    /// <summary>
    /// Samples the fiber that starts at flat index <paramref name="first"/>; <paramref name="order"/> is scratch of at
    /// least <paramref name="length"/> entries.
    /// </summary>
    public static void SampleFiber(float* values, long first, int length, int stride, in Probabilities probabilities,
        PhiloxKey key, ulong[] order)
    {
        // (magnitude key, position) pairs sort like a stable sort by magnitude: the sorted position is the rank − 1.
        for (int r = 0; r < length; r++)
        {
            uint magnitude = BitConverter.SingleToUInt32Bits(values[first + (long)r * stride]) & 0x7FFFFFFFu;
            order[r] = ((ulong)magnitude << 32) | (uint)r;
        }
        Array.Sort(order, 0, length);
        float span = length - 1;
        for (int s = 0; s < length; s++)
        {
            long index = first + (long)(uint)order[s] * stride;
            float p = length == 1 ? probabilities.Single : probabilities.Low + s / span * 2f * probabilities.Epsilon;
            float value = values[index];
            bool keep = Philox4x32.ToUniform(Philox4x32.ElementBits(key, index)) < p;
            values[index] = keep ? (probabilities.Divide ? value / p : value) : 0f;
        }
    }
}
