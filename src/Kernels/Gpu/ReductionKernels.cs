using ILGPU;
using ILGPU.Runtime;
using Weld.Kernels.Cpu;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, int, ArrayView<double>>? _chunkSums;

    /// <inheritdoc />
    public double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"Expected {a.Length} elements, got {b.Length}.", nameof(b));
        if (a.Length == 0)
            return 0;
        using var call = new Call(this);
        ArrayView<float> left = call.Upload(a);
        ArrayView<float> right = call.Upload(b);
        return SumOverChunks(call, left, right, a.Length, ReductionKernels.DotTerm);
    }

    /// <inheritdoc />
    public double SumOfSquares(ReadOnlySpan<float> x)
    {
        if (x.Length == 0)
            return 0;
        using var call = new Call(this);
        ArrayView<float> data = call.Upload(x);
        return SumOverChunks(call, data, data, x.Length, ReductionKernels.SquareTerm);
    }

    /// <inheritdoc />
    public double SumOfAbs(ReadOnlySpan<float> x)
    {
        if (x.Length == 0)
            return 0;
        using var call = new Call(this);
        ArrayView<float> data = call.Upload(x);
        return SumOverChunks(call, data, data, x.Length, ReductionKernels.AbsTerm);
    }

    /// <summary>
    /// One float64 partial per 64K chunk on the device (<see cref="ReductionKernels.ChunkSums"/>), then their sum in
    /// chunk order from +0 on the host, exactly as <see cref="CpuKernels"/> adds its chunk partials.
    /// </summary>
    private double SumOverChunks(Call call, ArrayView<float> a, ArrayView<float> b, long length, int term)
    {
        int chunks = ChunkedParallel.ChunkCount(length);
        ArrayView<double> partials = call.Rent<double>(chunks);
        LaunchChunkSums(a, b, term, length, partials);
        double[] host = new double[chunks];
        call.Download(partials, host.AsSpan());
        double total = 0;
        for (int chunk = 0; chunk < chunks; chunk++)
            total += host[chunk];
        return total;
    }

    /// <summary>
    /// Queues <see cref="ReductionKernels.ChunkSums"/>: one partial per <see cref="ChunkedParallel.ChunkLength"/>
    /// chunk into <paramref name="partials"/> (<see cref="ChunkedParallel.ChunkCount"/> elements).
    /// </summary>
    internal void LaunchChunkSums(ArrayView<float> a, ArrayView<float> b, int term, long length, ArrayView<double> partials)
    {
        if (_device.GroupSize % ReductionKernels.Lanes != 0 || _device.GroupSize > ReductionKernels.MaxGroupSize)
            throw new NotSupportedException(
                $"The reductions need a group size that is a multiple of {ReductionKernels.Lanes} and at most {ReductionKernels.MaxGroupSize}; this device has {_device.GroupSize}.");
        int chunks = ChunkedParallel.ChunkCount(length);
        long slots = (long)chunks * ReductionKernels.Lanes;
        Load(ref _chunkSums, ReductionKernels.ChunkSums)(Stream, GridFor(slots), a, b, term, length, chunks, partials);
    }
}

/// <summary>
/// Float64 reductions in exactly the CPU's order (<see cref="Cpu.ReductionKernels"/> over
/// <see cref="ChunkedParallel"/> chunks), so Dot / SumOfSquares / SumOfAbs give the CPU backend's bits and a SLERP or
/// Model Stock merge writes the same bytes on either backend.
/// </summary>
/// <remarks>
/// The CPU cuts the input into chunks of 65536 elements. Inside a chunk, two 256-bit vectors of four float64 lanes
/// act as eight accumulators: accumulator j takes the elements i ≡ j (mod 8) of the whole 8-element groups in index
/// order; the eight are combined as ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)); then the tail (the last
/// size mod 8 elements) is added one by one. Here one thread runs one accumulator: a chunk's eight lanes are eight
/// neighbouring threads of one group (the group size is a multiple of 8), which meet in shared memory, and lane 0
/// finishes the chunk. Every product of two floats is exact in float64; the adds go through
/// <see cref="GpuArithmetic"/> so ptxas never fuses a float64 multiply into the following add.
/// The dependent add chain (8192 adds per lane) bounds the speed on a GPU, not the memory (as the old reduce.cu).
/// </remarks>
internal static class ReductionKernels
{
    /// <summary>Float64 accumulators per chunk (two Vector256&lt;double&gt; on the CPU).</summary>
    public const int Lanes = 8;

    /// <summary>Largest group the shared lane array holds (the CUDA block limit).</summary>
    public const int MaxGroupSize = 1024;

    /// <summary>Term a[i]·b[i].</summary>
    public const int DotTerm = 0;

    /// <summary>Term a[i]².</summary>
    public const int SquareTerm = 1;

    /// <summary>Term |a[i]|.</summary>
    public const int AbsTerm = 2;

    /// <summary>partials[c] = the CPU's float64 sum of term(i) over chunk c (lanes, lane combination, tail).</summary>
    /// <remarks>
    /// Thread slot s works on chunk s / 8, lane s % 8. The loop over slot blocks runs the same number of times in
    /// every thread of a group (its bound depends on the group's first slot only), so both barriers are reached by
    /// the whole group.
    /// </remarks>
    public static void ChunkSums(ArrayView<float> a, ArrayView<float> b, int term, long length, int chunks, ArrayView<double> partials)
    {
        ArrayView<double> lanes = SharedMemory.Allocate<double>(MaxGroupSize);
        long slots = (long)chunks * Lanes;
        long stride = (long)Grid.DimX * Group.DimX;
        for (long first = (long)Grid.IdxX * Group.DimX; first < slots; first += stride)
        {
            long slot = first + Group.IdxX;
            long chunk = slot / Lanes;
            int lane = (int)(slot % Lanes);
            long start = chunk * ChunkedParallel.ChunkLength;
            int size = slot < slots ? (int)Math.Min(ChunkedParallel.ChunkLength, length - start) : 0;
            int grouped = size - size % Lanes;

            double sum = 0.0;
            int i = lane;
            // Four loads ahead of their adds (the adds stay in index order): the loads do not wait on the add chain.
            for (; i + 3 * Lanes < grouped; i += 4 * Lanes)
            {
                double t0 = Term(a, b, term, start + i);
                double t1 = Term(a, b, term, start + i + Lanes);
                double t2 = Term(a, b, term, start + i + 2 * Lanes);
                double t3 = Term(a, b, term, start + i + 3 * Lanes);
                sum = Add(Add(Add(Add(sum, t0), t1), t2), t3);
            }
            for (; i < grouped; i += Lanes)
                sum = Add(sum, Term(a, b, term, start + i));
            lanes[Group.IdxX] = sum;
            Group.Barrier();

            if (lane == 0 && slot < slots)
            {
                int at = Group.IdxX;
                double total = Add(
                    Add(Add(lanes[at], lanes[at + 4]), Add(lanes[at + 1], lanes[at + 5])),
                    Add(Add(lanes[at + 2], lanes[at + 6]), Add(lanes[at + 3], lanes[at + 7])));
                for (int j = grouped; j < size; j++)
                    total = Add(total, Term(a, b, term, start + j));
                partials[chunk] = total;
            }
            // The next block overwrites the lane array: every lane-0 thread must have read it first.
            Group.Barrier();
        }
    }

    /// <summary>The float64 value element i contributes (exact: a product of two floats fits a double).</summary>
    private static double Term(ArrayView<float> a, ArrayView<float> b, int term, long i)
    {
        double x = a[i];
        if (term == DotTerm)
            return Mul(x, (double)b[i]);
        if (term == SquareTerm)
            return Mul(x, x);
        return Math.Abs(x);
    }
}
