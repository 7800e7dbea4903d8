using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, ArrayView<float>>? _weightedSum;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, ArrayView<float>, int, float, float, ArrayView<float>, ArrayView<float>>? _weightedSumOntoBase;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, int, ArrayView<float>, long>? _subtractRows;
    private Action<AcceleratorStream, KernelConfig, float, ArrayView<float>, float, ArrayView<float>, ArrayView<float>, long>? _axpby;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, float, long>? _scale;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, float, long>? _divide;

    /// <inheritdoc />
    public void WeightedSum(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, Span<float> output)
    {
        int length = output.Length;
        RequireStacked(stacked.Length, weights.Length, length, nameof(stacked));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stacked);
        ArrayView<float> weightView = call.Upload(weights);
        ArrayView<float> result = call.Rent<float>(length);
        Load(ref _weightedSum, ElementwiseKernels.WeightedSum)(Stream, GridFor(length), source, weightView, weights.Length, length, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void WeightedSumOntoBase(ReadOnlySpan<float> stacked, ReadOnlySpan<float> weights, float divisor, float lambda,
        ReadOnlySpan<float> baseline, Span<float> output, ReadOnlySpan<float> preScales = default)
    {
        int length = output.Length;
        RequireStacked(stacked.Length, weights.Length, length, nameof(stacked));
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        RequirePreScales(preScales.Length, weights.Length);
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stacked);
        ArrayView<float> weightView = call.Upload(weights);
        ArrayView<float> scaleView = call.Upload(preScales);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> result = call.Rent<float>(length);
        Load(ref _weightedSumOntoBase, ElementwiseKernels.WeightedSumOntoBase)(Stream, GridFor(length), source, weightView, weights.Length, length,
            scaleView, preScales.IsEmpty ? 0 : 1, divisor, lambda, baseView, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void SubtractRows(Span<float> stacked, ReadOnlySpan<float> baseline)
    {
        int length = baseline.Length;
        int rows = StackedRows.Count(stacked.Length, length, nameof(stacked));
        if (rows == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> data = call.Upload(stacked);
        ArrayView<float> baselineView = call.Upload(baseline);
        LaunchSubtractRows(data, rows, baselineView, length);
        call.Download(data, stacked);
    }

    /// <inheritdoc />
    public void Axpby(float a, ReadOnlySpan<float> x, float b, ReadOnlySpan<float> y, Span<float> output)
    {
        if (x.Length != output.Length)
            throw new ArgumentException($"Expected {output.Length} elements, got {x.Length}.", nameof(x));
        if (y.Length != output.Length)
            throw new ArgumentException($"Expected {output.Length} elements, got {y.Length}.", nameof(y));
        int length = output.Length;
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> left = call.Upload(x);
        ArrayView<float> right = call.Upload(y);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchAxpby(a, left, b, right, result, length);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void Scale(Span<float> values, float factor)
    {
        if (values.Length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> data = call.Upload(values);
        LaunchScale(data, factor, values.Length);
        call.Download(data, values);
    }

    /// <inheritdoc />
    public void Divide(Span<float> values, float divisor)
    {
        if (values.Length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> data = call.Upload(values);
        LaunchDivide(data, divisor, values.Length);
        call.Download(data, values);
    }

    // Launches on device arrays (inside a Call; also for the bench, which times kernels without transfers).

    internal void LaunchSubtractRows(ArrayView<float> stacked, int rows, ArrayView<float> baseline, long length) =>
        Load(ref _subtractRows, ElementwiseKernels.SubtractRows)(Stream, GridFor(length), stacked, rows, baseline, length);

    internal void LaunchAxpby(float a, ArrayView<float> x, float b, ArrayView<float> y, ArrayView<float> output, long length) =>
        Load(ref _axpby, ElementwiseKernels.Axpby)(Stream, GridFor(length), a, x, b, y, output, length);

    internal void LaunchScale(ArrayView<float> values, float factor, long length) =>
        Load(ref _scale, ElementwiseKernels.Scale)(Stream, GridFor(length), values, factor, length);

    internal void LaunchDivide(ArrayView<float> values, float divisor, long length) =>
        Load(ref _divide, ElementwiseKernels.Divide)(Stream, GridFor(length), values, divisor, length);
}

/// <summary>Element-by-element float32 kernels: grid-stride loops, each product and sum rounded on its own.</summary>
internal static class ElementwiseKernels
{
    /// <summary>output[i] = ((+0 + w0·x0[i]) + w1·x1[i]) + …, each step rounded to float32 (the CPU's order).</summary>
    public static void WeightedSum(ArrayView<float> stacked, ArrayView<float> weights, int rows, long length, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum = Add(sum, Mul(weights[k], stacked[k * length + i]));
            output[i] = sum;
        }
    }

    /// <summary>
    /// The linear family's combine onto a base, the CPU's order: v_k = x_k[i] (·preScales[k], rounded, when
    /// <paramref name="preScaled"/> ≠ 0), acc = ((+0 + w_0·v_0) + w_1·v_1) + …, acc / divisor when divisor ≠ 1, acc·λ when
    /// λ ≠ 1, then 1·base[i] + 1·acc: the <see cref="Scale"/>, <see cref="WeightedSum"/>, <see cref="Divide"/>,
    /// <see cref="Scale"/> and <see cref="Axpby"/> kernels' rounded steps in one pass.
    /// </summary>
    public static void WeightedSumOntoBase(ArrayView<float> stacked, ArrayView<float> weights, int rows, long length,
        ArrayView<float> preScales, int preScaled, float divisor, float lambda, ArrayView<float> baseline, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
            {
                float x = stacked[k * length + i];
                sum = Add(sum, Mul(weights[k], preScaled != 0 ? Mul(x, preScales[k]) : x));
            }
            if (divisor != 1f) sum = Div(sum, divisor);
            if (lambda != 1f) sum = Mul(sum, lambda);
            output[i] = Add(Mul(1f, baseline[i]), Mul(1f, sum));
        }
    }

    /// <summary>stacked[r·length + i] −= baseline[i] for every row r: one baseline load serves all rows.</summary>
    public static void SubtractRows(ArrayView<float> stacked, int rows, ArrayView<float> baseline, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float value = baseline[i];
            for (int r = 0; r < rows; r++)
                stacked[r * length + i] = Sub(stacked[r * length + i], value);
        }
    }

    /// <summary>output[i] = a·x[i] + b·y[i]: both products rounded before the sum (the CPU never fuses them).</summary>
    public static void Axpby(float a, ArrayView<float> x, float b, ArrayView<float> y, ArrayView<float> output, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            output[i] = Add(Mul(a, x[i]), Mul(b, y[i]));
    }

    /// <summary>values[i] ·= factor (one rounded multiply, as TensorPrimitives.Multiply).</summary>
    public static void Scale(ArrayView<float> values, float factor, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            values[i] = Mul(values[i], factor);
    }

    /// <summary>values[i] /= divisor: one IEEE division each (not a multiply by the reciprocal, as the CPU).</summary>
    public static void Divide(ArrayView<float> values, float divisor, long length)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            values[i] = Div(values[i], divisor);
    }
}
