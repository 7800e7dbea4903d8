using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, long, float, int, ulong, uint, uint, long>? _dropAndRescale;

    /// <inheritdoc />
    public void DropAndRescale(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        if (float.IsNaN(density) || density < 0f)
            throw new ArgumentOutOfRangeException(nameof(density), density, "The keep probability must be in [0, 1].");
        if (density >= 1f || values.Length == 0)
            return; // Everything kept, nothing to divide.

        int length = values.Length;
        using var call = new Call(this);
        ArrayView<float> data = call.Upload(values);
        LaunchDropAndRescale(data, length, density, rescale, key, firstIndex);
        call.Download(data, values);
    }

    /// <summary>Queues DARE's drop on a device array whose element 0 is tensor element <paramref name="firstIndex"/> (length ≥ 1).</summary>
    internal void LaunchDropAndRescale(ArrayView<float> values, long length, float density, bool rescale, PhiloxKey key, long firstIndex = 0) =>
        Load(ref _dropAndRescale, DropAndRescaleKernel.Apply)(Stream, GridFor(DropAndRescaleKernel.BlocksSpanned(firstIndex, length)),
            values, length, density, rescale ? 1 : 0, key.Seed, key.TensorHash, key.ModelIndex, firstIndex);
}

/// <summary>
/// DARE's Bernoulli drop: element i (tensor index) keeps iff (word i of Weld's Philox stream &gt;&gt; 8)·2^-24 &lt;
/// density, becoming x / density (one IEEE division) when rescaling; dropped elements become +0. One thread per
/// Philox block of four tensor elements, so each block is generated once.
/// </summary>
internal static class DropAndRescaleKernel
{
    /// <summary>Philox blocks that elements [first, first + count) touch (count ≥ 1).</summary>
    public static long BlocksSpanned(long first, long count) => ((first + count - 1) >> 2) - (first >> 2) + 1;

    /// <summary>values[0] is tensor element <paramref name="first"/>: a tensor cut in chunks draws the mask it draws whole.</summary>
    public static void Apply(ArrayView<float> values, long count, float density, int rescale, ulong seed, uint tensorHash,
        uint modelIndex, long first)
    {
        long firstBlock = first >> 2;
        long blocks = BlocksSpanned(first, count);
        long stride = (long)Grid.DimX * Group.DimX;
        for (long j = (long)Grid.IdxX * Group.DimX + Group.IdxX; j < blocks; j += stride)
        {
            long block = firstBlock + j;
            PhiloxWords words = GpuPhilox.StreamBlock(seed, tensorHash, modelIndex, (ulong)block);
            // Index in values of the block's lane 0: negative in a first block that starts before the span.
            long lane0 = block * 4 - first;
            for (int lane = 0; lane < 4; lane++)
            {
                long i = lane0 + lane;
                if (i >= 0 && i < count)
                    values[i] = Keep(values[i], words.Lane(lane), density, rescale);
            }
        }
    }

    private static float Keep(float value, uint word, float density, int rescale)
    {
        if (GpuPhilox.ToUniform(word) < density)
            return rescale != 0 ? Div(value, density) : value;
        return 0f;
    }
}
