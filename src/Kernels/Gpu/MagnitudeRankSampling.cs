using ILGPU;
using ILGPU.Runtime;
using Weld.Kernels.Random;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

/// <remarks>DELLA's magnitude-rank sampling (<see cref="MagnitudeRankSampling"/>): upload, one launch (a group per fiber), download.</remarks>
public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, long, int, long, int, float, float, float, int, ulong, uint, uint, long>? _sampleByMagnitudeRank;

    /// <inheritdoc />
    public void SampleByMagnitudeRank(Span<float> values, int fiberLength, int fiberStride, float lowProbability, float epsilon,
        float singleProbability, bool divideByProbability, PhiloxKey key, long firstIndex = 0) =>
        SampleByMagnitudeRank(values, fiberLength, fiberStride, lowProbability, epsilon, singleProbability, divideByProbability, key,
            MagnitudeRankSampling.Tile, firstIndex);

    /// <summary>
    /// <see cref="SampleByMagnitudeRank(Span{float}, int, int, float, float, float, bool, PhiloxKey, long)"/> with fibers of up
    /// to <paramref name="tile"/> elements sorted and longer ones ranked by counting over tiles of that size (1 to
    /// <see cref="MagnitudeRankSampling.Tile"/>); tests take a small tile to reach the counting path with short fibers.
    /// </summary>
    internal void SampleByMagnitudeRank(Span<float> values, int fiberLength, int fiberStride, float lowProbability, float epsilon,
        float singleProbability, bool divideByProbability, PhiloxKey key, int tile, long firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(tile, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tile, MagnitudeRankSampling.Tile);
        long fibers = Cpu.CpuKernels.RankSamplingFibers(values.Length, fiberLength, fiberStride);
        if (fibers == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> input = call.Upload(values);
        ArrayView<float> output = call.Rent<float>(values.Length);
        LaunchSampleByMagnitudeRank(input, output, fibers, fiberLength, fiberStride, lowProbability, epsilon, singleProbability,
            divideByProbability, key, tile, firstIndex);
        call.Download(output, values);
    }

    /// <summary>
    /// Launches on device arrays (inside a Call; also for the bench): reads <paramref name="input"/>, writes every element
    /// of <paramref name="output"/>.
    /// </summary>
    internal void LaunchSampleByMagnitudeRank(ArrayView<float> input, ArrayView<float> output, long fibers, int fiberLength, long fiberStride,
        float lowProbability, float epsilon, float singleProbability, bool divideByProbability, PhiloxKey key,
        int tile = MagnitudeRankSampling.Tile, long firstIndex = 0)
    {
        // One group per fiber; the kernel strides over the fibers past the grid.
        var config = new KernelConfig((int)Math.Min(fibers, _device.MaxGroups), _device.GroupSize);
        Load(ref _sampleByMagnitudeRank, MagnitudeRankSampling.SampleFibers)(Stream, config, input, output, fibers, fiberLength, fiberStride,
            tile, lowProbability, epsilon, singleProbability, divideByProbability ? 1 : 0, key.Seed, key.TensorHash, key.ModelIndex, firstIndex);
    }
}

/// <summary>
/// DELLA's MagPrune, one group per fiber (grid-stride over the fibers). The fiber's (magnitude key &lt;&lt; 32 | position)
/// pairs order the elements exactly as the CPU's sort of the same pairs does (<c>Cpu/MagnitudeRankSampling.cs</c>).
/// A fiber of up to <see cref="Tile"/> elements (or the smaller tile a test passes) is sorted in shared memory (bitonic,
/// padded with all-ones pairs; the padded length never exceeds <see cref="Tile"/>); a longer one counts each element's rank, #{pairs below its own}, over tiles of the fiber in shared memory
/// (O(length²) per fiber). Reads <c>input</c> and writes <c>output</c>, so no element changes while its fiber is ranked.
/// The keep draw is Weld's Philox element stream (<see cref="Philox4x32"/>), computed by <see cref="GpuPhilox"/>.
/// </summary>
internal static class MagnitudeRankSampling
{
    /// <summary>Pairs a group sorts in shared memory (32 KiB).</summary>
    public const int Tile = 4096;

    /// <summary>
    /// Samples every fiber, <paramref name="tileSize"/> (≤ <see cref="Tile"/>) pairs sorted or counted at a time: the
    /// element at sorted position s is kept iff u &lt; p(s), as <see cref="IMergeKernels.SampleByMagnitudeRank"/>.
    /// </summary>
    public static void SampleFibers(ArrayView<float> input, ArrayView<float> output, long fibers, int length, long stride, int tileSize,
        float low, float epsilon, float single, int divide, ulong seed, uint tensorHash, uint modelIndex, long firstIndex)
    {
        ArrayView<ulong> tile = SharedMemory.Allocate<ulong>(Tile);
        int thread = Group.IdxX, threads = Group.DimX;
        for (long fiber = Grid.IdxX; fiber < fibers; fiber += Grid.DimX)
        {
            long first = fiber / stride * length * stride + fiber % stride;
            if (length <= tileSize)
            {
                int padded = 1;
                while (padded < length)
                    padded <<= 1;
                for (int t = thread; t < padded; t += threads)
                    tile[t] = t < length ? RankPair(input, first, t, stride) : ulong.MaxValue;
                Group.Barrier();
                for (int k = 2; k <= padded; k <<= 1)
                {
                    for (int j = k >> 1; j > 0; j >>= 1)
                    {
                        // Each pair (t, t ^ j) is touched by the one thread that owns its lower index.
                        for (int t = thread; t < padded; t += threads)
                        {
                            int partner = t ^ j;
                            if (partner > t)
                            {
                                ulong a = tile[t], b = tile[partner];
                                bool ascending = (t & k) == 0;
                                if ((a > b) == ascending)
                                {
                                    tile[t] = b;
                                    tile[partner] = a;
                                }
                            }
                        }
                        Group.Barrier();
                    }
                }
                for (int s = thread; s < length; s += threads)
                {
                    long index = first + (long)(uint)tile[s] * stride;
                    output[index] = Sample(input[index], firstIndex + index, s, length, low, epsilon, single, divide, seed, tensorHash, modelIndex);
                }
                Group.Barrier(); // the next fiber reuses the tile
            }
            else
            {
                for (int start = 0; start < length; start += threads)
                {
                    int r = start + thread;
                    bool valid = r < length;
                    ulong own = valid ? RankPair(input, first, r, stride) : 0;
                    int rank = 0;
                    for (int tileStart = 0; tileStart < length; tileStart += tileSize)
                    {
                        int tileCount = length - tileStart < tileSize ? length - tileStart : tileSize;
                        Group.Barrier(); // the previous tile has been read by every thread
                        for (int t = thread; t < tileCount; t += threads)
                            tile[t] = RankPair(input, first, tileStart + t, stride);
                        Group.Barrier();
                        if (valid)
                        {
                            for (int t = 0; t < tileCount; t++)
                                rank += tile[t] < own ? 1 : 0;
                        }
                    }
                    if (valid)
                    {
                        long index = first + (long)r * stride;
                        output[index] = Sample(input[index], firstIndex + index, rank, length, low, epsilon, single, divide, seed, tensorHash, modelIndex);
                    }
                }
                Group.Barrier(); // the next fiber reuses the tile
            }
        }
    }

    /// <summary>(magnitude key &lt;&lt; 32) | position r: distinct pairs whose order is the stable order by magnitude.</summary>
    private static ulong RankPair(ArrayView<float> input, long first, int r, long stride) =>
        ((ulong)MagnitudeKey(input[first + r * stride]) << 32) | (uint)r;

    /// <summary>Element <paramref name="index"/> (tensor index, for the draw) at sorted position s: p from s (float32, the CPU's order), then the keep draw.</summary>
    private static float Sample(float x, long index, int s, int length, float low, float epsilon, float single, int divide, ulong seed,
        uint tensorHash, uint modelIndex)
    {
        float p = length == 1 ? single : Add(low, Mul(Mul(Div(s, length - 1), 2f), epsilon));
        // Word index % 4 of the block holding element index, as the CPU's Philox4x32.ElementBits draws it.
        float u = GpuPhilox.ToUniform(GpuPhilox.StreamBlock(seed, tensorHash, modelIndex, (ulong)index >> 2).Lane((int)(index & 3)));
        if (!(u < p))
            return 0f;
        return divide != 0 ? Div(x, p) : x;
    }
}
