using System.Buffers;

namespace Weld.Kernels.Cpu;

/// <summary>
/// The CPU backend: SIMD (<see cref="System.Numerics.Vector{T}"/>, TensorPrimitives) over fixed chunks of 64K
/// elements, chunks spread over threads with <see cref="Parallel.For(int, int, ParallelOptions, Action{int})"/>.
/// </summary>
/// <remarks>
/// Chunk boundaries do not depend on the thread count and reductions combine per-chunk partials in chunk order,
/// so every result is bit-identical on 1 or N threads. Float32 arithmetic is never fused (each product and sum is
/// rounded), matching the GPU kernels' <c>mul.rn</c> / <c>add.rn</c> (<c>Gpu.GpuArithmetic</c>). Length mismatches are programming
/// errors of the caller and throw <see cref="ArgumentException"/>.
/// </remarks>
public sealed unsafe partial class CpuKernels : IMergeKernels
{
    private readonly ParallelOptions _parallel;

    /// <summary>Creates the backend.</summary>
    /// <param name="maxDegreeOfParallelism">Threads to use at most; −1 uses every core.</param>
    public CpuKernels(int maxDegreeOfParallelism = -1)
    {
        if (maxDegreeOfParallelism == 0 || maxDegreeOfParallelism < -1)
            throw new ArgumentOutOfRangeException(nameof(maxDegreeOfParallelism), maxDegreeOfParallelism,
                "Use a positive thread count, or -1 for all cores.");
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism };
    }

    /// <summary>Threads used at most (−1: every core).</summary>
    public int MaxDegreeOfParallelism => _parallel.MaxDegreeOfParallelism;

    /// <inheritdoc />
    public string Name => "cpu";

    /// <inheritdoc />
    public void WeightedSum(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stacked.Length, weights.Length, length, nameof(stacked));
        float[] weightCopy = weights.ToArray(); // a lambda cannot capture a span; K floats per call
        fixed (float* source = stacked)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                ElementwiseKernels.WeightedSum((float*)sourceAddress + start, length, weightCopy,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void SubtractRows(Span<float> stacked, ReadOnlySpan<float> baseline)
    {
        int length = baseline.Length;
        int rows = StackedRows.Count(stacked.Length, length, nameof(stacked));
        fixed (float* rowsStart = stacked)
        fixed (float* baselineStart = baseline)
        {
            nint rowsAddress = (nint)rowsStart, baselineAddress = (nint)baselineStart;
            ChunkedParallel.ForEachRowChunk(rows, length, _parallel, (row, start, size) =>
                ElementwiseKernels.Subtract(
                    new Span<float>((float*)rowsAddress + (long)row * length + start, size),
                    new ReadOnlySpan<float>((float*)baselineAddress + start, size)));
        }
    }

    /// <inheritdoc />
    public TopKSelection KeepTopK(Span<float> values, long k)
    {
        MagnitudeSelection selection = FindTopK(values, k, out TopKSelection kept);
        ApplySelection(values, selection);
        return kept;
    }

    /// <inheritdoc />
    public void KeepMagnitudeBand(Span<float> values, long dropBottom, long dropTop) =>
        ApplySelection(values, FindMagnitudeBand(values, dropBottom, dropTop));

    /// <inheritdoc />
    public void DropAndRescale(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        if (float.IsNaN(density) || density < 0f)
            throw new ArgumentOutOfRangeException(nameof(density), density, "The keep probability must be in [0, 1].");
        if (density >= 1f)
            return; // Everything kept, nothing to divide.

        int length = values.Length;
        fixed (float* data = values)
        {
            nint address = (nint)data;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                DropAndRescaleKernel.Apply((float*)address + start, firstIndex + start, size,
                    density, rescale, key);
            });
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Per 64K chunk, the drop sums |x| before and after into <see cref="SumOfAbs"/>'s accumulators as it reads and
    /// writes each group of 8 (<see cref="DropAndRescaleKernel.ApplyWithNorms(float*, long, int, float, bool, PhiloxKey)"/>);
    /// the partials are added in chunk order (<see cref="WithChunkL1Norms"/>).
    /// </remarks>
    public (double Before, double After) DropAndRescaleWithNorms(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstIndex);
        if (float.IsNaN(density) || density < 0f)
            throw new ArgumentOutOfRangeException(nameof(density), density, "The keep probability must be in [0, 1].");
        return WithChunkL1Norms<object?>(values, static () => null, (at, start, size, _) =>
            DropAndRescaleKernel.ApplyWithNorms(at, firstIndex + start, size, density, rescale, key));
    }

    /// <summary>
    /// An in-place operation on the chunk at <paramref name="at"/> (elements [start, start + size) of the span) returning
    /// the chunk's <see cref="ReductionKernels.SumOfAbs"/> before and after it, with that function's bits.
    /// </summary>
    private delegate (double Before, double After) ChunkWithNorms<in TScratch>(float* at, long start, int size, TScratch scratch);

    /// <summary>
    /// Runs <paramref name="operation"/> on every <see cref="ChunkedParallel.ChunkLength"/> chunk (each sums the chunk
    /// before and after itself while the 256 KiB are in cache) and adds the partials in chunk order from +0, as
    /// <see cref="SumOfAbs"/> adds them, so both norms have its bits on any thread count. Each worker thread gets one
    /// scratch from <paramref name="newScratch"/>.
    /// </summary>
    private (double Before, double After) WithChunkL1Norms<TScratch>(Span<float> values, Func<TScratch> newScratch, ChunkWithNorms<TScratch> operation)
    {
        int length = values.Length;
        int chunks = ChunkedParallel.ChunkCount(length);
        double[] partials = ArrayPool<double>.Shared.Rent(Math.Max(2 * chunks, 1));
        try
        {
            fixed (float* data = values)
            {
                nint address = (nint)data;
                TScratch Chunk(int chunk, TScratch scratch)
                {
                    long start = ChunkedParallel.ChunkStart(chunk);
                    int size = ChunkedParallel.ChunkSize(chunk, length);
                    float* at = (float*)address + start;
                    (partials[2 * chunk], partials[2 * chunk + 1]) = operation(at, start, size, scratch);
                    return scratch;
                }

                if (chunks <= 1 || _parallel.MaxDegreeOfParallelism == 1)
                {
                    TScratch scratch = newScratch();
                    for (int chunk = 0; chunk < chunks; chunk++)
                        Chunk(chunk, scratch);
                }
                else
                {
                    Parallel.For(0, chunks, _parallel, newScratch, (chunk, _, scratch) => Chunk(chunk, scratch), static _ => { });
                }
            }
            double before = 0, after = 0;
            for (int chunk = 0; chunk < chunks; chunk++)
            {
                before += partials[2 * chunk];
                after += partials[2 * chunk + 1];
            }
            return (before, after);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partials);
        }
    }

    /// <inheritdoc />
    public void MagnitudeHistogram(ReadOnlySpan<float> values, int prefix, int shift, int width, Span<long> histogram)
    {
        if (width is < 1 or > 16 || shift < 0 || shift + width > 31)
            throw new ArgumentOutOfRangeException(nameof(width), width, "Digits are 1 to 16 bits inside the 31-bit magnitude key.");
        if (histogram.Length < 1 << width)
            throw new ArgumentException($"The histogram needs {1 << width} entries.", nameof(histogram));
        fixed (float* data = values)
        fixed (long* counts = histogram)
            MagnitudeHistogramKernel.Add(data, values.Length, prefix, shift, width, counts, _parallel);
    }

    /// <inheritdoc />
    public long KeepAboveMagnitude(Span<float> values, int thresholdKey, long tiesToKeep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(thresholdKey);
        ArgumentOutOfRangeException.ThrowIfNegative(tiesToKeep);
        int length = values.Length;
        if (tiesToKeep == 0)
        {
            // The tie budget is spent (every chunk after the one where it ran out): all ties leave, nothing to count.
            fixed (float* data = values)
                MagnitudeMask.ApplyKeyRange(data, length, thresholdKey, int.MaxValue, _parallel);
            return 0;
        }
        int chunks = ChunkedParallel.ChunkCount(length);
        int[] equalPerChunk = ArrayPool<int>.Shared.Rent(Math.Max(chunks, 1));
        try
        {
            fixed (float* data = values)
            {
                long equal = MagnitudeHistogramKernel.CountEqual(data, length, thresholdKey, equalPerChunk, _parallel);
                // A lower cut at the threshold: keys below leave, ties from tie index tiesToKeep on leave.
                var cut = new MagnitudeCut(thresholdKey, Math.Min(tiesToKeep, equal), long.MaxValue, equalPerChunk);
                MagnitudeMask.Apply(data, length, cut, null, _parallel);
                return Math.Min(tiesToKeep, equal);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(equalPerChunk);
        }
    }

    /// <inheritdoc />
    public void SignConsensusMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, Span<float> output)
    {
        if (election is not (SignElection.Sum or SignElection.Count))
            throw new ArgumentOutOfRangeException(nameof(election), election, "Unknown sign election.");
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        float[] weightCopy = weights.ToArray();
        fixed (float* source = stackedDeltas)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                SignConsensusKernel.Merge((float*)sourceAddress + start, length, weightCopy, election, normalize,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void SignConsensusMergeOntoBase(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, float lambda, ReadOnlySpan<float> baseline, Span<float> output,
        ReadOnlySpan<float> preScales = default)
    {
        if (election is not (SignElection.Sum or SignElection.Count))
            throw new ArgumentOutOfRangeException(nameof(election), election, "Unknown sign election.");
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequirePreScales(preScales.Length, weights.Length);
        float[] weightCopy = weights.ToArray();
        float[]? scaleCopy = preScales.IsEmpty ? null : preScales.ToArray();
        fixed (float* source = stackedDeltas)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        fixed (float* scales = scaleCopy)
        {
            nint sourceAddress = (nint)source, baseAddress = (nint)baseStart, destinationAddress = (nint)destination;
            nint scaleAddress = (nint)scales;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                SignConsensusKernel.Merge((float*)sourceAddress + start, length, weightCopy, election, normalize,
                    (float*)destinationAddress + start, size, lambda, (float*)baseAddress + start, (float*)scaleAddress);
            });
        }
    }

    /// <inheritdoc />
    public void WeightedSumOntoBase(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, float divisor, float lambda,
        ReadOnlySpan<float> baseline, Span<float> output, ReadOnlySpan<float> preScales = default)
    {
        int length = output.Length;
        RequireStacked(stacked.Length, weights.Length, length, nameof(stacked));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequirePreScales(preScales.Length, weights.Length);
        float[] weightCopy = weights.ToArray();
        float[]? scaleCopy = preScales.IsEmpty ? null : preScales.ToArray();
        fixed (float* source = stacked)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        fixed (float* scales = scaleCopy)
        {
            nint sourceAddress = (nint)source, baseAddress = (nint)baseStart, destinationAddress = (nint)destination;
            nint scaleAddress = (nint)scales;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                float* rows = (float*)sourceAddress + start, at = (float*)baseAddress + start, to = (float*)destinationAddress + start;
                if (scaleAddress == 0)
                    ElementwiseKernels.WeightedSumOntoBase(default(RowsAsStored), rows, length, weightCopy, divisor, lambda, at, to, size);
                else
                    ElementwiseKernels.WeightedSumOntoBase(new RowsPreScaled((float*)scaleAddress), rows, length, weightCopy, divisor, lambda, at, to, size);
            });
        }
    }

    /// <inheritdoc />
    public double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        RequireSameLength(a.Length, b.Length, nameof(b));
        fixed (float* left = a)
        fixed (float* right = b)
        {
            nint leftAddress = (nint)left, rightAddress = (nint)right;
            return SumOverChunks(a.Length, (start, size) =>
                ReductionKernels.Dot((float*)leftAddress + start, (float*)rightAddress + start, size));
        }
    }

    /// <inheritdoc />
    public double SumOfSquares(ReadOnlySpan<float> x)
    {
        fixed (float* data = x)
        {
            nint address = (nint)data;
            return SumOverChunks(x.Length, (start, size) => ReductionKernels.SumOfSquares((float*)address + start, size));
        }
    }

    /// <inheritdoc />
    public void Axpby(float a, ReadOnlySpan<float> x, float b, ReadOnlySpan<float> y, Span<float> output)
    {
        RequireSameLength(output.Length, x.Length, nameof(x));
        RequireSameLength(output.Length, y.Length, nameof(y));
        int length = output.Length;
        fixed (float* left = x)
        fixed (float* right = y)
        fixed (float* destination = output)
        {
            nint leftAddress = (nint)left, rightAddress = (nint)right, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                ElementwiseKernels.Axpby(a, (float*)leftAddress + start, b, (float*)rightAddress + start,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void Scale(Span<float> values, float factor)
    {
        int length = values.Length;
        fixed (float* data = values)
        {
            nint address = (nint)data;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                ElementwiseKernels.Scale(
                    new Span<float>((float*)address + start, size),
                    factor));
        }
    }

    /// <inheritdoc />
    public void Divide(Span<float> values, float divisor)
    {
        int length = values.Length;
        fixed (float* data = values)
        {
            nint address = (nint)data;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                ElementwiseKernels.Divide(
                    new Span<float>((float*)address + start, size),
                    divisor));
        }
    }

    /// <inheritdoc />
    public double SumOfAbs(ReadOnlySpan<float> x)
    {
        fixed (float* data = x)
        {
            nint address = (nint)data;
            return SumOverChunks(x.Length, (start, size) => ReductionKernels.SumOfAbs((float*)address + start, size));
        }
    }

    /// <summary>Per-chunk float64 partials, then their sum in chunk order (thread-count independent).</summary>
    private double SumOverChunks(int length, Func<long, int, double> chunkSum)
    {
        int chunks = ChunkedParallel.ChunkCount(length);
        double[] partials = ArrayPool<double>.Shared.Rent(chunks);
        try
        {
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                partials[chunk] = chunkSum(start, size));
            double total = 0;
            for (int chunk = 0; chunk < chunks; chunk++)
                total += partials[chunk];
            return total;
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partials);
        }
    }

    private static void RequireStacked(int stackedLength, int rows, int rowLength, string parameter)
    {
        if ((long)rows * rowLength != stackedLength)
            throw new ArgumentException(
                $"Expected {rows} stacked rows of {rowLength} elements ({(long)rows * rowLength}), got {stackedLength}.", parameter);
    }

    private static void RequirePreScales(int preScales, int rows)
    {
        if (preScales != 0 && preScales != rows)
            throw new ArgumentException($"Expected no pre-scales or one per row ({rows}), got {preScales}.", "preScales");
    }

    private static void RequireSameLength(int expected, int actual, string parameter)
    {
        if (expected != actual)
            throw new ArgumentException($"Expected {expected} elements, got {actual}.", parameter);
    }
}
