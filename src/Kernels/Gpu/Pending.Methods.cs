namespace Weld.Kernels.Gpu;

// Placeholders until the method (Methods, Interpolation, RankSampling) kernels land (this file is deleted then).
public sealed partial class GpuKernels
{
    /// <inheritdoc />
    public void SelectLargestMagnitude(ReadOnlySpan<float> stacked, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public long TallMask(ReadOnlySpan<float> task, ReadOnlySpan<float> multiTask, float lambda, Span<byte> packed) => throw new NotImplementedException();

    /// <inheritdoc />
    public void TallRestore(ReadOnlySpan<float> baseline, ReadOnlySpan<float> multiTask, ReadOnlySpan<byte> packed, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void ConsensusMerge(ReadOnlySpan<float> stackedTaskVectors, ReadOnlySpan<float> lambdas, int minAgreeing, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void FisherMerge(ReadOnlySpan<float> stackedModels, ReadOnlySpan<float> stackedFisher, ReadOnlySpan<float> weights, float epsilon, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void NearSwap(ReadOnlySpan<float> baseline, ReadOnlySpan<float> other, float t, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void RamMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> baseline, ReadOnlySpan<float> uniqueScales, float epsilon, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void RamContributionCounts(ReadOnlySpan<float> stackedDeltas, float epsilon, Span<long> shared, Span<long> unique) => throw new NotImplementedException();

    /// <inheritdoc />
    public long VarianceAcrossRows(ReadOnlySpan<float> stacked, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void ClearRowsWhereZero(Span<float> stacked, ReadOnlySpan<float> selector) => throw new NotImplementedException();

    /// <inheritdoc />
    public void SignErasedMix(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights, float divisorFloor, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void ScaleFromBase(ReadOnlySpan<float> baseline, Span<float> merged, float scale) => throw new NotImplementedException();

    /// <inheritdoc />
    public void AxpbyRows(Span<float> values, ReadOnlySpan<float> valueWeights, ReadOnlySpan<float> baseline, ReadOnlySpan<float> baseWeights) => throw new NotImplementedException();

    /// <inheritdoc />
    public void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, float threshold, Span<float> scores) => throw new NotImplementedException();

    /// <inheritdoc />
    public void SoftmaxDivergenceScores(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, int rowLength, Span<float> scores) => throw new NotImplementedException();

    /// <inheritdoc />
    public void SampleByMagnitudeRank(Span<float> values, int fiberLength, int fiberStride, float lowProbability, float epsilon, float singleProbability, bool divideByProbability, PhiloxKey key) => throw new NotImplementedException();

}
