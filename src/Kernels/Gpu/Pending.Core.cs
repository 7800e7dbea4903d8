namespace Weld.Kernels.Gpu;

// Placeholders until the core (elementwise, reductions) kernels land (this file is deleted then).
public sealed partial class GpuKernels
{
    /// <inheritdoc />
    public void SubtractRows(Span<float> stacked, ReadOnlySpan<float> baseline) => throw new NotImplementedException();

    /// <inheritdoc />
    public double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => throw new NotImplementedException();

    /// <inheritdoc />
    public double SumOfSquares(ReadOnlySpan<float> x) => throw new NotImplementedException();

    /// <inheritdoc />
    public void Axpby(float a, ReadOnlySpan<float> x, float b, ReadOnlySpan<float> y, Span<float> output) => throw new NotImplementedException();

    /// <inheritdoc />
    public void Scale(Span<float> values, float factor) => throw new NotImplementedException();

    /// <inheritdoc />
    public void Divide(Span<float> values, float divisor) => throw new NotImplementedException();

    /// <inheritdoc />
    public double SumOfAbs(ReadOnlySpan<float> x) => throw new NotImplementedException();

}
