using System.Buffers;
namespace Weld.Kernels.Cpu;

/// <remarks>The newer methods' kernels (<see cref="MethodKernels"/>) over the same fixed 64K-element chunks.</remarks>
public sealed unsafe partial class CpuKernels
{
    /// <inheritdoc />
    public void SelectLargestMagnitude(ReadOnlySpan<float> stacked, Span<float> output)
    {
        int length = output.Length;
        int rows = RowsOf(stacked.Length, length, nameof(stacked));
        if (length == 0)
            return;
        fixed (float* source = stacked)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.SelectLargestMagnitude((float*)sourceAddress + start, length, rows,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public long TallMask(ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed)
    {
        int length = task.Length;
        RequireSameLength(length, multiTask.Length, nameof(multiTask));
        if (packed.Length != (length + 7L) / 8)
            throw new ArgumentException($"A mask of {length} elements packs into {(length + 7L) / 8} bytes, got {packed.Length}.", nameof(packed));
        int chunks = ChunkedParallel.ChunkCount(length);
        if (chunks == 0)
            return 0;
        long[] setPerChunk = new long[chunks];
        fixed (float* own = task)
        fixed (float* all = multiTask)
        fixed (byte* bits = packed)
        {
            nint ownAddress = (nint)own, allAddress = (nint)all, bitsAddress = (nint)bits;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                // start is a multiple of 8: each chunk owns whole bytes
                setPerChunk[chunk] = MethodKernels.TallMask((float*)ownAddress + start, (float*)allAddress + start, lambda,
                    (byte*)bitsAddress + start / 8, size);
            });
        }
        long set = 0;
        foreach (long count in setPerChunk)
            set += count;
        return set;
    }

    /// <inheritdoc />
    public void TallRestore(ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed, Span<float> output)
    {
        int length = output.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequireSameLength(length, multiTask.Length, nameof(multiTask));
        if (packed.Length != (length + 7L) / 8)
            throw new ArgumentException($"A mask of {length} elements packs into {(length + 7L) / 8} bytes, got {packed.Length}.", nameof(packed));
        fixed (float* baseStart = baseline)
        fixed (float* all = multiTask)
        fixed (byte* bits = packed)
        fixed (float* destination = output)
        {
            nint baseAddress = (nint)baseStart, allAddress = (nint)all, bitsAddress = (nint)bits, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                // start is a multiple of 8: each chunk owns whole bytes
                MethodKernels.TallRestore((float*)baseAddress + start, (float*)allAddress + start, (byte*)bitsAddress + start / 8,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void ConsensusMerge(ReadOnlySpan<float> stackedTaskVectors, ReadOnlySpan<float> lambdas, int minAgreeing, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedTaskVectors.Length, lambdas.Length, length, nameof(stackedTaskVectors));
        float[] lambdaCopy = lambdas.ToArray(); // a lambda cannot capture a span; K floats per call
        fixed (float* source = stackedTaskVectors)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.ConsensusMerge((float*)sourceAddress + start, length, lambdaCopy, minAgreeing,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void FisherMerge(ReadOnlySpan<float> stackedModels, ReadOnlySpan<float> stackedFisher, ReadOnlySpan<float> weights,
        float epsilon, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedModels.Length, weights.Length, length, nameof(stackedModels));
        RequireStacked(stackedFisher.Length, weights.Length, length, nameof(stackedFisher));
        float[] weightCopy = weights.ToArray();
        fixed (float* models = stackedModels)
        fixed (float* fisher = stackedFisher)
        fixed (float* destination = output)
        {
            nint modelsAddress = (nint)models, fisherAddress = (nint)fisher, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.FisherMerge((float*)modelsAddress + start, (float*)fisherAddress + start, length, weightCopy, epsilon,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void NearSwap(ReadOnlySpan<float> baseline, ReadOnlySpan<float> other, float t, Span<float> output)
    {
        int length = output.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequireSameLength(length, other.Length, nameof(other));
        fixed (float* v0 = baseline)
        fixed (float* v1 = other)
        fixed (float* destination = output)
        {
            nint v0Address = (nint)v0, v1Address = (nint)v1, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.NearSwap((float*)v0Address + start, (float*)v1Address + start, t,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void RamMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> baseline, ReadOnlySpan<float> uniqueScales,
        float epsilon, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, uniqueScales.Length, length, nameof(stackedDeltas));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        float[] scaleCopy = uniqueScales.ToArray();
        fixed (float* deltas = stackedDeltas)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        {
            nint deltasAddress = (nint)deltas, baseAddress = (nint)baseStart, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.RamMerge((float*)deltasAddress + start, length, (float*)baseAddress + start, scaleCopy, epsilon,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void RamContributionCounts(ReadOnlySpan<float> stackedDeltas, float epsilon, Span<long> shared, Span<long> unique)
    {
        int rows = shared.Length;
        RequireSameLength(rows, unique.Length, nameof(unique));
        if (rows == 0)
        {
            if (stackedDeltas.Length != 0)
                throw new ArgumentException("Deltas without models to count them for.", nameof(stackedDeltas));
            return;
        }
        if (stackedDeltas.Length % rows != 0)
            throw new ArgumentException($"The stacked rows hold {stackedDeltas.Length} elements, not {rows} equal rows.", nameof(stackedDeltas));
        int length = stackedDeltas.Length / rows;
        int chunks = ChunkedParallel.ChunkCount(length);
        // Per chunk: rows shared counts, then rows unique counts; integers, so any summing order gives the same totals.
        long[] perChunk = new long[(long)chunks * 2 * rows];
        fixed (float* deltas = stackedDeltas)
        {
            nint deltasAddress = (nint)deltas;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.RamContributionCounts((float*)deltasAddress + start, length, rows, epsilon,
                    perChunk.AsSpan(chunk * 2 * rows, 2 * rows), size);
            });
        }
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            for (int k = 0; k < rows; k++)
            {
                shared[k] += perChunk[(long)chunk * 2 * rows + k];
                unique[k] += perChunk[(long)chunk * 2 * rows + rows + k];
            }
        }
    }

    /// <inheritdoc />
    public long VarianceAcrossRows(ReadOnlySpan<float> stacked, Span<float> output)
    {
        int length = output.Length;
        int rows = RowsOf(stacked.Length, length, nameof(stacked));
        int chunks = ChunkedParallel.ChunkCount(length);
        if (chunks == 0)
            return 0;
        long[] nonzeroPerChunk = new long[chunks];
        fixed (float* source = stacked)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                nonzeroPerChunk[chunk] = MethodKernels.VarianceAcrossRows((float*)sourceAddress + start, length, rows,
                    (float*)destinationAddress + start, size);
            });
        }
        long nonzero = 0;
        foreach (long count in nonzeroPerChunk)
            nonzero += count;
        return nonzero;
    }

    /// <inheritdoc />
    public void ClearRowsWhereZero(Span<float> stacked, ReadOnlySpan<float> selector)
    {
        int length = selector.Length;
        int rows = StackedRows.Count(stacked.Length, length, nameof(stacked));
        fixed (float* rowsStart = stacked)
        fixed (float* selectorStart = selector)
        {
            nint rowsAddress = (nint)rowsStart, selectorAddress = (nint)selectorStart;
            ChunkedParallel.ForEachRowChunk(rows, length, _parallel, (row, start, size) =>
                MethodKernels.ClearWhereZero((float*)rowsAddress + (long)row * length + start, (float*)selectorAddress + start, size));
        }
    }

    /// <inheritdoc />
    public void SignErasedMix(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights, float divisorFloor, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        float[] weightCopy = weights.ToArray();
        fixed (float* source = stackedDeltas)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.SignErasedMix((float*)sourceAddress + start, length, weightCopy, divisorFloor,
                    (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public double SumOfSquaresWhereSelected(Span<float> x, ReadOnlySpan<float> selector)
    {
        RequireSameLength(x.Length, selector.Length, nameof(selector));
        fixed (float* data = x)
        fixed (float* selectorStart = selector)
        {
            nint address = (nint)data, selectorAddress = (nint)selectorStart;
            return SumOverChunks(x.Length, (start, size) =>
                ReductionKernels.SumOfSquaresWhereSelected((float*)address + start, (float*)selectorAddress + start, size));
        }
    }

    /// <inheritdoc />
    public void AddSumsOfSquaresWhereSelected(Span<float> stacked, int rowStride, ReadOnlySpan<float> selector, Span<double> sums)
    {
        int length = selector.Length, rows = sums.Length;
        if (rows == 0) return;
        if (rowStride < length || (long)(rows - 1) * rowStride + length > stacked.Length)
            throw new ArgumentException(
                $"Expected {rows} rows of {length} elements {rowStride} apart, got {stacked.Length} elements.", nameof(stacked));
        int chunks = ChunkedParallel.ChunkCount(length);
        // Per chunk and row a partial from 0, added per row in chunk order from 0: SumOverChunks' order for each row.
        double[] partials = ArrayPool<double>.Shared.Rent(chunks * rows);
        try
        {
            fixed (float* data = stacked)
            fixed (float* selectorStart = selector)
            fixed (double* partialStart = partials)
            {
                nint address = (nint)data, selectorAddress = (nint)selectorStart, partialAddress = (nint)partialStart;
                ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                    ReductionKernels.SumsOfSquaresWhereSelected((float*)address + start, rowStride, rows,
                        (float*)selectorAddress + start, size, (double*)partialAddress + (long)chunk * rows));
            }
            for (int k = 0; k < rows; k++)
            {
                double total = 0;
                for (int chunk = 0; chunk < chunks; chunk++)
                    total += partials[chunk * rows + k];
                sums[k] += total;
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partials);
        }
    }

    /// <inheritdoc />
    public void PackSelection(ReadOnlySpan<float> selector, Span<ulong> bits)
    {
        int length = selector.Length;
        if (bits.Length != SelectionBits.WordCount(length))
            throw new ArgumentException($"Expected {SelectionBits.WordCount(length)} words for {length} elements, got {bits.Length}.", nameof(bits));
        fixed (float* selectorStart = selector)
        fixed (ulong* bitStart = bits)
        {
            nint selectorAddress = (nint)selectorStart, bitAddress = (nint)bitStart;
            // Chunks start at multiples of 64 elements: each packs whole words of its own.
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                SelectionBits.Pack(new ReadOnlySpan<float>((float*)selectorAddress + start, size),
                    new Span<ulong>((ulong*)bitAddress + start / 64, (int)SelectionBits.WordCount(size))));
        }
    }

    /// <inheritdoc />
    public void UnpackSelection(ReadOnlySpan<ulong> bits, Span<float> selector)
    {
        int length = selector.Length;
        if (bits.Length < SelectionBits.WordCount(length))
            throw new ArgumentException($"Expected {SelectionBits.WordCount(length)} words for {length} elements, got {bits.Length}.", nameof(bits));
        fixed (ulong* bitStart = bits)
        fixed (float* selectorStart = selector)
        {
            nint bitAddress = (nint)bitStart, selectorAddress = (nint)selectorStart;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                SelectionBits.Unpack(new ReadOnlySpan<ulong>((ulong*)bitAddress + start / 64, (int)SelectionBits.WordCount(size)),
                    new Span<float>((float*)selectorAddress + start, size)));
        }
    }

    /// <inheritdoc />
    public void SignErasedMixOntoBase(Span<float> stackedDeltas, ReadOnlySpan<float> selector, ReadOnlySpan<float> weights,
        float divisorFloor, ReadOnlySpan<float> baseline, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        bool selects = !selector.IsEmpty;
        if (selects) RequireSameLength(length, selector.Length, nameof(selector));
        float[] weightCopy = weights.ToArray();
        fixed (float* source = stackedDeltas)
        fixed (float* selectorStart = selector)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, selectorAddress = (nint)selectorStart, baseAddress = (nint)baseStart,
                destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                MethodKernels.SignErasedMixOntoBase((float*)sourceAddress + start, length, weightCopy, divisorFloor,
                    selects ? (float*)selectorAddress + start : null, (float*)baseAddress + start, (float*)destinationAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public MagnitudeKeep SelectTopKCut(Span<float> values, long k)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(k);
        int length = values.Length;
        long kept = Math.Min(k, length);
        if (kept == 0)
            return MagnitudeKeep.Nothing;
        if (kept == length)
            return MagnitudeKeep.NotZero; // all kept: the mask would leave every value as it is, ±0 reading as dropped
        int chunks = ChunkedParallel.ChunkCount(length);
        int[] equalPerChunk = ArrayPool<int>.Shared.Rent(chunks);
        try
        {
            fixed (float* data = values)
            {
                // KeepTopK's select (the k-th largest key sits at ascending rank n − k), without its mask pass.
                MagnitudeRank threshold = MagnitudeSelect.Select(data, length, length - kept, _parallel, equalPerChunk);
                long above = length - threshold.CountBelow - threshold.CountEqual;
                if (threshold.Key == 0)
                    return MagnitudeKeep.NotZero; // kept ±0 values stay ±0 under the mask: a selector drops them
                return new MagnitudeKeep(threshold.Key, IndexOfTie((int*)data, length, threshold.Key, kept - above, equalPerChunk));
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(equalPerChunk);
        }
    }

    /// <inheritdoc />
    public MagnitudeKeep CutAboveMagnitude(ReadOnlySpan<float> values, int thresholdKey, long tiesToKeep, out long tiesKept)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(thresholdKey);
        ArgumentOutOfRangeException.ThrowIfNegative(tiesToKeep);
        int length = values.Length;
        tiesKept = 0;
        if (tiesToKeep == 0)
            return new MagnitudeKeep(thresholdKey, 0); // the budget is spent: nothing to count
        int chunks = ChunkedParallel.ChunkCount(length);
        int[] equalPerChunk = ArrayPool<int>.Shared.Rent(Math.Max(chunks, 1));
        try
        {
            fixed (float* data = values)
            {
                long equal = MagnitudeHistogramKernel.CountEqual(data, length, thresholdKey, equalPerChunk, _parallel);
                tiesKept = Math.Min(tiesToKeep, equal);
                if (thresholdKey == 0)
                    return MagnitudeKeep.NotZero; // kept ±0 values stay ±0 under the mask: a selector drops them
                return new MagnitudeKeep(thresholdKey, IndexOfTie((int*)data, length, thresholdKey, tiesKept, equalPerChunk));
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(equalPerChunk);
        }
    }

    /// <summary>
    /// Flat index of the tie (element of key <paramref name="key"/>) that has <paramref name="nth"/> ties before it, the
    /// length when there are not that many: the chunk from the per-chunk counts, the index inside it by a scan.
    /// </summary>
    private static long IndexOfTie(int* bits, int length, int key, long nth, int[] equalPerChunk)
    {
        long before = 0;
        int chunks = ChunkedParallel.ChunkCount(length);
        for (int chunk = 0; chunk < chunks; chunk++)
        {
            int equal = equalPerChunk[chunk];
            if (nth < before + equal)
            {
                long start = ChunkedParallel.ChunkStart(chunk);
                return start + MagnitudeMask.IndexOfTie(bits + start, ChunkedParallel.ChunkSize(chunk, length), key, nth - before);
            }
            before += equal;
        }
        return length;
    }

    /// <inheritdoc />
    public void AddSumsOfSquaresWhereKept(Span<float> stacked, int rowStride, ReadOnlySpan<float> keys, MagnitudeKeep keep,
        Span<double> sums, Span<ulong> keptBits)
    {
        int length = keys.Length, rows = sums.Length;
        if (rows > 0 && (rowStride < length || (long)(rows - 1) * rowStride + length > stacked.Length))
            throw new ArgumentException(
                $"Expected {rows} rows of {length} elements {rowStride} apart, got {stacked.Length} elements.", nameof(stacked));
        if (keptBits.Length != SelectionBits.WordCount(length))
            throw new ArgumentException($"Expected {SelectionBits.WordCount(length)} words for {length} elements, got {keptBits.Length}.", nameof(keptBits));
        int chunks = ChunkedParallel.ChunkCount(length);
        // The kernels write whole bytes up to element n: the rest of the last word is 0, as SelectionBits.Pack leaves it.
        if (length % 64 != 0) keptBits[^1] = 0;
        // Per chunk and row a partial from 0, added per row in chunk order from 0: AddSumsOfSquaresWhereSelected's order.
        double[] partials = ArrayPool<double>.Shared.Rent(Math.Max(chunks * rows, 1));
        try
        {
            fixed (float* data = stacked)
            fixed (float* keyStart = keys)
            fixed (ulong* bitStart = keptBits)
            fixed (double* partialStart = partials)
            {
                nint address = (nint)data, keyAddress = (nint)keyStart, bitAddress = (nint)bitStart, partialAddress = (nint)partialStart;
                // Chunks start at multiples of 64 elements: each writes whole bytes of its own.
                ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                    ReductionKernels.SumsOfSquaresWhereKept((float*)address + start, rowStride, rows, (int*)keyAddress + start, size,
                        new KeptByKey(keep, start, size), (byte*)bitAddress + start / 8, (double*)partialAddress + (long)chunk * rows));
            }
            for (int k = 0; k < rows; k++)
            {
                double total = 0;
                for (int chunk = 0; chunk < chunks; chunk++)
                    total += partials[chunk * rows + k];
                sums[k] += total;
            }
        }
        finally
        {
            ArrayPool<double>.Shared.Return(partials);
        }
    }

    /// <inheritdoc />
    public void SignErasedMixOntoBaseWhereKept(Span<float> stackedDeltas, ReadOnlySpan<ulong> keptBits, ReadOnlySpan<float> weights,
        float divisorFloor, ReadOnlySpan<float> baseline, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        if (keptBits.Length < SelectionBits.WordCount(length))
            throw new ArgumentException($"Expected {SelectionBits.WordCount(length)} words for {length} elements, got {keptBits.Length}.", nameof(keptBits));
        float[] weightCopy = weights.ToArray();
        fixed (float* source = stackedDeltas)
        fixed (ulong* bitStart = keptBits)
        fixed (float* baseStart = baseline)
        fixed (float* destination = output)
        {
            nint sourceAddress = (nint)source, bitAddress = (nint)bitStart, baseAddress = (nint)baseStart, destinationAddress = (nint)destination;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
                MethodKernels.SignErasedMixOntoBaseWhereKept((float*)sourceAddress + start, length, weightCopy, divisorFloor,
                    (byte*)bitAddress + start / 8, (float*)baseAddress + start, (float*)destinationAddress + start, size));
        }
    }

    /// <summary>Rows of a stacked input whose row length is the output's; at least one when there is data.</summary>
    internal static int RowsOf(int stackedLength, int rowLength, string parameter)
    {
        if (rowLength == 0)
        {
            if (stackedLength != 0)
                throw new ArgumentException($"Expected no stacked elements for an empty output, got {stackedLength}.", parameter);
            return 0;
        }
        if (stackedLength == 0 || stackedLength % rowLength != 0)
            throw new ArgumentException(
                $"Expected one or more stacked rows of {rowLength} elements, got {stackedLength} elements.", parameter);
        return stackedLength / rowLength;
    }
}
