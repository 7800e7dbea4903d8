using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, ArrayView<float>>? _weightedSum;

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
}
