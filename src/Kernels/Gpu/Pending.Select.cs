namespace Weld.Kernels.Gpu;

// Placeholders until the selection (top-k, band, TIES, DARE) kernels land (this file is deleted then).
public sealed partial class GpuKernels
{
    /// <inheritdoc />
    public TopKSelection KeepTopK(Span<float> values, long k) => throw new NotImplementedException();

    /// <inheritdoc />
    public void KeepMagnitudeBand(Span<float> values, long dropBottom, long dropTop) => throw new NotImplementedException();

    /// <inheritdoc />
    public void DropAndRescale(Span<float> values, float density, bool rescale, PhiloxKey key, long firstIndex = 0) => throw new NotImplementedException();

    /// <inheritdoc />
    public void MagnitudeHistogram(ReadOnlySpan<float> values, int prefix, int shift, int width, Span<long> histogram) => throw new NotImplementedException();

    /// <inheritdoc />
    public long KeepAboveMagnitude(Span<float> values, int thresholdKey, long tiesToKeep) => throw new NotImplementedException();

    /// <inheritdoc />
    public void SignConsensusMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights, SignElection election, bool normalize, Span<float> output) => throw new NotImplementedException();

}
