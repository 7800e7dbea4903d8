using System.Runtime.CompilerServices;
using Weld.Kernels.Random;

namespace Weld.Kernels.Cpu;

/// <summary>
/// DARE's Bernoulli drop over one chunk: element i is kept iff Philox4x32.ToUniform(word i of the stream) &lt;
/// density; kept elements are divided by density (one IEEE division) when rescaling, dropped ones become +0.
/// </summary>
internal static unsafe class DropAndRescaleKernel
{
    /// <summary>Processes elements [start, start + count) of the tensor; <paramref name="values"/> points at element start.</summary>
    public static void Apply(float* values, long start, int count, float density, bool rescale, PhiloxKey key)
    {
        long element = start;
        long end = start + count;

        // Chunks start on a block boundary; a general start finishes its first block lane by lane.
        for (; element < end && (element & 3) != 0; element++)
            values[element - start] = Keep(values[element - start], Philox4x32.ElementBits(key, element), density, rescale);

        for (; element + 4 <= end; element += 4)
        {
            Philox4x32Block block = Philox4x32.StreamBlock(key, (ulong)element >> 2);
            float* at = values + (element - start);
            at[0] = Keep(at[0], block.X0, density, rescale);
            at[1] = Keep(at[1], block.X1, density, rescale);
            at[2] = Keep(at[2], block.X2, density, rescale);
            at[3] = Keep(at[3], block.X3, density, rescale);
        }

        for (; element < end; element++)
            values[element - start] = Keep(values[element - start], Philox4x32.ElementBits(key, element), density, rescale);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Keep(float value, uint bits, float density, bool rescale) =>
        Philox4x32.ToUniform(bits) < density ? (rescale ? value / density : value) : 0f;
}
