namespace Weld.Kernels.Cpu;

/// <remarks>Interpolation against the base (<see cref="InterpolationKernels"/>) over the fixed 64K-element chunks.</remarks>
public sealed unsafe partial class CpuKernels
{
    /// <inheritdoc />
    public void ScaleFromBase(ReadOnlySpan<float> baseline, Span<float> merged, float scale)
    {
        int length = merged.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        fixed (float* baseStart = baseline)
        fixed (float* mergedStart = merged)
        {
            nint baseAddress = (nint)baseStart, mergedAddress = (nint)mergedStart;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                InterpolationKernels.ScaleFromBase((float*)baseAddress + start, (float*)mergedAddress + start, scale,
                    size);
            });
        }
    }

    /// <inheritdoc />
    public void AxpbyRows(Span<float> values, ReadOnlySpan<float> valueWeights, ReadOnlySpan<float> baseline, ReadOnlySpan<float> baseWeights)
    {
        int length = values.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequireSameLength(valueWeights.Length, baseWeights.Length, nameof(baseWeights));
        int rows = valueWeights.Length;
        int rowLength = InterpolationRowLength(length, rows);
        if (length == 0)
            return;
        float[] valueCopy = valueWeights.ToArray(), baseCopy = baseWeights.ToArray(); // a lambda cannot capture a span
        fixed (float* valuesStart = values)
        fixed (float* baseStart = baseline)
        {
            nint valuesAddress = (nint)valuesStart, baseAddress = (nint)baseStart;
            ChunkedParallel.ForEachRowChunk(rows, rowLength, _parallel, (row, start, size) =>
            {
                long offset = (long)row * rowLength + start;
                float* target = (float*)valuesAddress + offset;
                ElementwiseKernels.Axpby(valueCopy[row], target, baseCopy[row], (float*)baseAddress + offset, target, size);
            });
        }
    }

    /// <inheritdoc />
    public void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, float threshold, Span<float> scores)
    {
        int length = scores.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequireSameLength(length, model.Length, nameof(model));
        fixed (float* baseStart = baseline)
        fixed (float* modelStart = model)
        fixed (float* scoresStart = scores)
        {
            nint baseAddress = (nint)baseStart, modelAddress = (nint)modelStart, scoresAddress = (nint)scoresStart;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                InterpolationKernels.KeepImportantChanges((float*)baseAddress + start, (float*)modelAddress + start, threshold,
                    (float*)scoresAddress + start, size);
            });
        }
    }

    /// <inheritdoc />
    public void SoftmaxDivergenceScores(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, int rowLength, Span<float> scores)
    {
        int length = scores.Length;
        RequireSameLength(length, model.Length, nameof(model));
        RequireSameLength(length, baseline.Length, nameof(baseline));
        if (length == 0)
            return;
        if (rowLength < 1 || length % rowLength != 0)
            throw new ArgumentException($"{length} values do not split into rows of {rowLength}.", nameof(rowLength));
        fixed (float* modelStart = model)
        fixed (float* baseStart = baseline)
        fixed (float* scoresStart = scores)
        {
            nint modelAddress = (nint)modelStart, baseAddress = (nint)baseStart, scoresAddress = (nint)scoresStart;
            // Rows are independent and each is computed in row order, so the thread count never changes a bit.
            Parallel.For(0, length / rowLength, _parallel,
                () => new double[2 * rowLength],
                (row, _, exponentials) =>
                {
                    long start = (long)row * rowLength;
                    var modelRow = new ReadOnlySpan<float>((float*)modelAddress + start, rowLength);
                    var baseRow = new ReadOnlySpan<float>((float*)baseAddress + start, rowLength);
                    SoftmaxDivergence.Scale(modelRow, baseRow, SoftmaxDivergence.Divergence(modelRow, baseRow, exponentials),
                        new Span<float>((float*)scoresAddress + start, rowLength));
                    return exponentials;
                },
                static _ => { });
        }
    }

    /// <inheritdoc />
    public void SoftmaxDivergences(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<float> divergences)
    {
        int length = model.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        int rowLength = InterpolationRowLength(length, divergences.Length);
        if (length == 0)
            return;
        fixed (float* modelStart = model)
        fixed (float* baseStart = baseline)
        fixed (float* divergencesStart = divergences)
        {
            nint modelAddress = (nint)modelStart, baseAddress = (nint)baseStart, divergencesAddress = (nint)divergencesStart;
            // Rows are independent and each is computed in row order, so the thread count never changes a bit.
            Parallel.For(0, divergences.Length, _parallel,
                () => new double[2 * rowLength],
                (row, _, exponentials) =>
                {
                    long start = (long)row * rowLength;
                    ((float*)divergencesAddress)[row] = SoftmaxDivergence.Divergence(new ReadOnlySpan<float>((float*)modelAddress + start, rowLength),
                        new ReadOnlySpan<float>((float*)baseAddress + start, rowLength), exponentials);
                    return exponentials;
                },
                static _ => { });
        }
    }

    /// <inheritdoc />
    public void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, ReadOnlySpan<float> divergences, float threshold,
        Span<float> merged)
    {
        int length = merged.Length;
        RequireSameLength(length, baseline.Length, nameof(baseline));
        RequireSameLength(length, model.Length, nameof(model));
        int rowLength = InterpolationRowLength(length, divergences.Length);
        if (length == 0)
            return;
        fixed (float* baseStart = baseline)
        fixed (float* modelStart = model)
        fixed (float* divergencesStart = divergences)
        fixed (float* mergedStart = merged)
        {
            nint baseAddress = (nint)baseStart, modelAddress = (nint)modelStart, divergencesAddress = (nint)divergencesStart,
                mergedAddress = (nint)mergedStart;
            ChunkedParallel.ForEachChunk(length, _parallel, (chunk, start, size) =>
            {
                // The chunk's pieces of rows, each gated with its row's D.
                for (long i = start, end = start + size; i < end;)
                {
                    long row = i / rowLength;
                    int piece = (int)(Math.Min(end, (row + 1) * rowLength) - i);
                    InterpolationKernels.KeepImportantChanges((float*)baseAddress + i, (float*)modelAddress + i, ((float*)divergencesAddress)[row],
                        threshold, (float*)mergedAddress + i, piece);
                    i += piece;
                }
            });
        }
    }

    /// <summary>The row length of <see cref="AxpbyRows"/>: <paramref name="length"/> split into <paramref name="rows"/> equal rows.</summary>
    internal static int InterpolationRowLength(int length, int rows)
    {
        if (rows == 0)
        {
            if (length != 0)
                throw new ArgumentException($"{length} values without row weights.", nameof(rows));
            return 0;
        }
        if (length % rows != 0)
            throw new ArgumentException($"{length} values do not split into {rows} equal rows.", nameof(rows));
        return length / rows;
    }
}
