namespace Weld.Kernels.Cuda;

/// <remarks>The newer methods' kernels (<c>methods.cu</c>): upload, one launch, download.</remarks>
public sealed unsafe partial class CudaKernels
{
    /// <inheritdoc />
    public void SelectLargestMagnitude(ReadOnlySpan<float> stacked, Span<float> output)
    {
        int length = output.Length;
        int rows = Cpu.CpuKernels.RowsOf(stacked.Length, length, nameof(stacked));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer source = call.Upload(stacked);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchSelectLargestMagnitude(source.Pointer, rows, length, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public long TallMask(ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed)
    {
        int length = task.Length;
        if (multiTask.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {multiTask.Length}.", nameof(multiTask));
        if (packed.Length != (length + 7L) / 8)
            throw new ArgumentException($"A mask of {length} elements packs into {(length + 7L) / 8} bytes, got {packed.Length}.", nameof(packed));
        if (length == 0)
            return 0;
        using var call = new Call(this);
        DeviceBuffer own = call.Upload(task);
        DeviceBuffer all = call.Upload(multiTask);
        DeviceBuffer bits = call.Rent(packed.Length);
        DeviceBuffer count = call.Rent(sizeof(ulong));
        LaunchTallMask(own.Pointer, all.Pointer, lambda, length, bits.Pointer, count.Pointer);
        call.Download(bits, packed);
        ulong set = 0;
        _staging.Download(count.Pointer, &set, sizeof(ulong));
        return (long)set;
    }

    /// <inheritdoc />
    public void TallRestore(ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed, Span<float> output)
    {
        int length = output.Length;
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (multiTask.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {multiTask.Length}.", nameof(multiTask));
        if (packed.Length != (length + 7L) / 8)
            throw new ArgumentException($"A mask of {length} elements packs into {(length + 7L) / 8} bytes, got {packed.Length}.", nameof(packed));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer baseBuffer = call.Upload(baseline);
        DeviceBuffer all = call.Upload(multiTask);
        DeviceBuffer bits = call.Upload(packed);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchTallRestore(baseBuffer.Pointer, all.Pointer, bits.Pointer, length, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void ConsensusMerge(ReadOnlySpan<float> stackedTaskVectors, ReadOnlySpan<float> lambdas, int minAgreeing, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedTaskVectors.Length, lambdas.Length, length, nameof(stackedTaskVectors));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer source = call.Upload(stackedTaskVectors);
        DeviceBuffer lambdaBuffer = call.Upload(NonEmpty(lambdas));
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchConsensusMerge(source.Pointer, lambdaBuffer.Pointer, lambdas.Length, length, minAgreeing, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void FisherMerge(ReadOnlySpan<float> stackedModels, ReadOnlySpan<float> stackedFisher, ReadOnlySpan<float> weights,
        float epsilon, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedModels.Length, weights.Length, length, nameof(stackedModels));
        RequireStacked(stackedFisher.Length, weights.Length, length, nameof(stackedFisher));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer models = call.Upload(NonEmpty(stackedModels));
        DeviceBuffer fisher = call.Upload(NonEmpty(stackedFisher));
        DeviceBuffer weightBuffer = call.Upload(NonEmpty(weights));
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchFisherMerge(models.Pointer, fisher.Pointer, weightBuffer.Pointer, weights.Length, length, epsilon, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void NearSwap(ReadOnlySpan<float> baseline, ReadOnlySpan<float> other, float t, Span<float> output)
    {
        int length = output.Length;
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (other.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {other.Length}.", nameof(other));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer v0 = call.Upload(baseline);
        DeviceBuffer v1 = call.Upload(other);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchNearSwap(v0.Pointer, v1.Pointer, t, length, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void RamMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> baseline, ReadOnlySpan<float> uniqueScales,
        float epsilon, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, uniqueScales.Length, length, nameof(stackedDeltas));
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer deltas = call.Upload(NonEmpty(stackedDeltas));
        DeviceBuffer baseBuffer = call.Upload(baseline);
        DeviceBuffer scales = call.Upload(NonEmpty(uniqueScales));
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchRamMerge(deltas.Pointer, baseBuffer.Pointer, scales.Pointer, uniqueScales.Length, length, epsilon, result.Pointer);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void RamContributionCounts(ReadOnlySpan<float> stackedDeltas, float epsilon, Span<long> shared, Span<long> unique)
    {
        int rows = shared.Length;
        if (unique.Length != rows)
            throw new ArgumentException($"Expected {rows} elements, got {unique.Length}.", nameof(unique));
        if (rows == 0)
        {
            if (stackedDeltas.Length != 0)
                throw new ArgumentException("Deltas without models to count them for.", nameof(stackedDeltas));
            return;
        }
        if (stackedDeltas.Length % rows != 0)
            throw new ArgumentException($"The stacked rows hold {stackedDeltas.Length} elements, not {rows} equal rows.", nameof(stackedDeltas));
        int length = stackedDeltas.Length / rows;
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer deltas = call.Upload(stackedDeltas);
        DeviceBuffer counts = call.Rent(2L * rows * sizeof(ulong));
        LaunchRamContributionCounts(deltas.Pointer, rows, length, epsilon, counts.Pointer);
        ulong[] host = new ulong[2 * rows];
        fixed (ulong* destination = host)
            _staging.Download(counts.Pointer, destination, 2L * rows * sizeof(ulong));
        for (int k = 0; k < rows; k++)
        {
            shared[k] += (long)host[k];
            unique[k] += (long)host[rows + k];
        }
    }

    /// <inheritdoc />
    public long VarianceAcrossRows(ReadOnlySpan<float> stacked, Span<float> output)
    {
        int length = output.Length;
        int rows = Cpu.CpuKernels.RowsOf(stacked.Length, length, nameof(stacked));
        if (length == 0)
            return 0;
        using var call = new Call(this);
        DeviceBuffer source = call.Upload(stacked);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        DeviceBuffer count = call.Rent(sizeof(ulong));
        LaunchVarianceAcrossRows(source.Pointer, rows, length, result.Pointer, count.Pointer);
        call.Download(result, output);
        ulong nonzero = 0;
        _staging.Download(count.Pointer, &nonzero, sizeof(ulong));
        return (long)nonzero;
    }

    /// <inheritdoc />
    public void ClearRowsWhereZero(Span<float> stacked, ReadOnlySpan<float> selector)
    {
        int length = selector.Length;
        int rows = StackedRows.Count(stacked.Length, length, nameof(stacked));
        if (rows == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer data = call.Upload(stacked);
        DeviceBuffer selectorBuffer = call.Upload(selector);
        LaunchClearRowsWhereZero(data.Pointer, rows, selectorBuffer.Pointer, length);
        call.Download(data, stacked);
    }

    /// <inheritdoc />
    public void SignErasedMix(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights, float divisorFloor, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer deltas = call.Upload(NonEmpty(stackedDeltas));
        DeviceBuffer weightBuffer = call.Upload(NonEmpty(weights));
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchSignErasedMix(deltas.Pointer, weightBuffer.Pointer, weights.Length, length, divisorFloor, result.Pointer);
        call.Download(result, output);
    }

    // ------------------------------------------------------------------ launches on device buffers (also used by the bench)

    internal void LaunchSelectLargestMagnitude(ulong stacked, int rows, long length, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &stacked, &rows, &n, &output };
        _module.Launch("select_largest_magnitude", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    /// <summary>Zeroes the set-bit counter and packs the mask (one thread per byte).</summary>
    internal void LaunchTallMask(ulong task, ulong multiTask, float lambda, long length, ulong packed, ulong setCount)
    {
        long n = length;
        CudaDriverNative.Check(CudaDriverNative.cuMemsetD32Async(setCount, 0, 2, _device.ComputeStream), "cuMemsetD32Async");
        void** arguments = stackalloc void*[] { &task, &multiTask, &lambda, &n, &packed, &setCount };
        _module.Launch("tall_mask", GridFor((length + 7) / 8), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchTallRestore(ulong baseline, ulong multiTask, ulong packed, long length, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &baseline, &multiTask, &packed, &n, &output };
        _module.Launch("tall_restore", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchConsensusMerge(ulong stacked, ulong lambdas, int rows, long length, int minAgreeing, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &stacked, &lambdas, &rows, &n, &minAgreeing, &output };
        _module.Launch("consensus_merge", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchFisherMerge(ulong models, ulong fisher, ulong weights, int rows, long length, float epsilon, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &models, &fisher, &weights, &rows, &n, &epsilon, &output };
        _module.Launch("fisher_merge", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchNearSwap(ulong v0, ulong v1, float t, long length, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &v0, &v1, &t, &n, &output };
        _module.Launch("near_swap", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchRamMerge(ulong deltas, ulong baseline, ulong uniqueScales, int rows, long length, float epsilon, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &deltas, &baseline, &uniqueScales, &rows, &n, &epsilon, &output };
        _module.Launch("ram_merge", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    /// <summary>Zeroes the 2·rows counters and counts; blockIdx.y is the model (at most 65535 models).</summary>
    internal void LaunchRamContributionCounts(ulong deltas, int rows, long length, float epsilon, ulong counts)
    {
        if (rows > 65535)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "At most 65535 models per call (gridDim.y).");
        long n = length;
        CudaDriverNative.Check(CudaDriverNative.cuMemsetD32Async(counts, 0, (nuint)(4 * rows), _device.ComputeStream), "cuMemsetD32Async");
        void** arguments = stackalloc void*[] { &deltas, &rows, &n, &epsilon, &counts };
        _module.Launch("ram_contribution_counts", GridFor(length), (uint)rows, Threads, _device.ComputeStream, arguments);
    }

    /// <summary>Zeroes the non-zero counter and computes the variances.</summary>
    internal void LaunchVarianceAcrossRows(ulong stacked, int rows, long length, ulong output, ulong nonzeroCount)
    {
        long n = length;
        CudaDriverNative.Check(CudaDriverNative.cuMemsetD32Async(nonzeroCount, 0, 2, _device.ComputeStream), "cuMemsetD32Async");
        void** arguments = stackalloc void*[] { &stacked, &rows, &n, &output, &nonzeroCount };
        _module.Launch("variance_across_rows", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchClearRowsWhereZero(ulong stacked, int rows, ulong selector, long length)
    {
        ulong rowsPointer = stacked;
        long n = length;
        void** arguments = stackalloc void*[] { &rowsPointer, &selector, &n };
        for (int firstRow = 0; firstRow < rows; firstRow += 65535) // gridDim.y is at most 65535
        {
            rowsPointer = stacked + (ulong)firstRow * (ulong)length * sizeof(float);
            _module.Launch("clear_rows_where_zero", GridFor(length), (uint)Math.Min(65535, rows - firstRow), Threads, _device.ComputeStream, arguments);
        }
    }

    internal void LaunchSignErasedMix(ulong deltas, ulong weights, int rows, long length, float divisorFloor, ulong output)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &deltas, &weights, &rows, &n, &divisorFloor, &output };
        _module.Launch("sign_erased_mix", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    /// <summary>A zero-row input still needs a device pointer: upload one float instead of nothing.</summary>
    private static ReadOnlySpan<float> NonEmpty(ReadOnlySpan<float> values) => values.IsEmpty ? s_oneZero : values;

    private static readonly float[] s_oneZero = [0f];
}
