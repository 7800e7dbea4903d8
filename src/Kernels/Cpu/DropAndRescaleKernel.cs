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
        while (element < end)
        {
            Philox4x32Block block = Philox4x32.StreamBlock(key, (ulong)element >> 2);
            int firstLane = (int)(element & 3);
            int lanes = (int)Math.Min(4 - firstLane, end - element);
            float* at = values + (element - start);
            for (int lane = 0; lane < lanes; lane++)
            {
                float uniform = Philox4x32.ToUniform(block[firstLane + lane]);
                at[lane] = uniform < density ? (rescale ? at[lane] / density : at[lane]) : 0f;
            }

            element += lanes;
        }
    }
}
