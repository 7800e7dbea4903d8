namespace Weld.Kernels.Cuda;

/// <remarks>Interpolation against the base (<c>interpolate.cu</c>): upload, one launch, download.</remarks>
public sealed unsafe partial class CudaKernels
{
    /// <inheritdoc />
    public void ScaleFromBase(ReadOnlySpan<float> baseline, Span<float> merged, float scale)
    {
        int length = merged.Length;
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer baseBuffer = call.Upload(baseline);
        DeviceBuffer values = call.Upload(merged);
        LaunchScaleFromBase(baseBuffer.Pointer, values.Pointer, scale, length);
        call.Download(values, merged);
    }

    /// <inheritdoc />
    public void AxpbyRows(Span<float> values, ReadOnlySpan<float> valueWeights, ReadOnlySpan<float> baseline, ReadOnlySpan<float> baseWeights)
    {
        int length = values.Length;
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (baseWeights.Length != valueWeights.Length)
            throw new ArgumentException($"Expected {valueWeights.Length} weights, got {baseWeights.Length}.", nameof(baseWeights));
        int rowLength = Cpu.CpuKernels.InterpolationRowLength(length, valueWeights.Length);
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer valueBuffer = call.Upload(values);
        DeviceBuffer valueWeightBuffer = call.Upload(valueWeights);
        DeviceBuffer baseBuffer = call.Upload(baseline);
        DeviceBuffer baseWeightBuffer = call.Upload(baseWeights);
        LaunchAxpbyRows(valueBuffer.Pointer, valueWeightBuffer.Pointer, baseBuffer.Pointer, baseWeightBuffer.Pointer, rowLength, length);
        call.Download(valueBuffer, values);
    }

    /// <inheritdoc />
    public void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, float threshold, Span<float> scores)
    {
        int length = scores.Length;
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (model.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {model.Length}.", nameof(model));
        if (length == 0)
            return;
        using var call = new Call(this);
        DeviceBuffer baseBuffer = call.Upload(baseline);
        DeviceBuffer modelBuffer = call.Upload(model);
        DeviceBuffer scoreBuffer = call.Upload(scores);
        LaunchKeepImportantChanges(baseBuffer.Pointer, modelBuffer.Pointer, threshold, scoreBuffer.Pointer, length);
        call.Download(scoreBuffer, scores);
    }

    /// <inheritdoc />
    public void SoftmaxDivergenceScores(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, int rowLength, Span<float> scores)
    {
        int length = scores.Length;
        if (model.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {model.Length}.", nameof(model));
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        if (length == 0)
            return;
        if (rowLength < 1 || length % rowLength != 0)
            throw new ArgumentException($"{length} values do not split into rows of {rowLength}.", nameof(rowLength));
        using var call = new Call(this);
        DeviceBuffer modelBuffer = call.Upload(model);
        DeviceBuffer baseBuffer = call.Upload(baseline);
        DeviceBuffer result = call.Rent((long)length * sizeof(float));
        LaunchSoftmaxDivergenceScores(modelBuffer.Pointer, baseBuffer.Pointer, rowLength, length / rowLength, result.Pointer);
        call.Download(result, scores);
    }

    internal void LaunchSoftmaxDivergenceScores(ulong model, ulong baseline, long rowLength, long rows, ulong scores)
    {
        void** arguments = stackalloc void*[] { &model, &baseline, &rowLength, &rows, &scores };
        _module.Launch("softmax_divergence_scores", GridFor(rows), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchKeepImportantChanges(ulong baseline, ulong model, float threshold, ulong scores, long length)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &baseline, &model, &threshold, &scores, &n };
        _module.Launch("keep_important_changes", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchScaleFromBase(ulong baseline, ulong merged, float scale, long length)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &baseline, &merged, &scale, &n };
        _module.Launch("scale_from_base", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }

    internal void LaunchAxpbyRows(ulong values, ulong valueWeights, ulong baseline, ulong baseWeights, long rowLength, long length)
    {
        long n = length;
        void** arguments = stackalloc void*[] { &values, &valueWeights, &baseline, &baseWeights, &rowLength, &n };
        _module.Launch("axpby_rows", GridFor(length), 1, Threads, _device.ComputeStream, arguments);
    }
}
