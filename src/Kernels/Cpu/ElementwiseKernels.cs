using System.Numerics;
using System.Numerics.Tensors;

namespace Weld.Kernels.Cpu;

/// <summary>
/// Element-by-element float32 kernels over one chunk. Every product and sum is rounded on its own (no fused
/// multiply-add): the JIT never contracts <c>a * b + c</c>, and the GPU kernels pin <c>mul.rn</c> /
/// <c>add.rn</c> (<c>Gpu.GpuArithmetic</c>), so both backends give the same bits.
/// </summary>
internal static unsafe class ElementwiseKernels
{
    /// <summary>output[i] = ((0 + w0·x0[i]) + w1·x1[i]) + …, each step rounded to float32.</summary>
    public static void WeightedSum(float* stacked, long rowLength, ReadOnlySpan<float> weights, float* output, int count)
    {
        int rows = weights.Length;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> sum = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                    sum += new Vector<float>(weights[k]) * Vector.Load(stacked + k * rowLength + i);
                Vector.Store(sum, output + i);
            }
        }

        for (; i < count; i++)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum += weights[k] * stacked[k * rowLength + i];
            output[i] = sum;
        }
    }

    /// <summary>output[i] = a·x[i] + b·y[i], the two products rounded before the sum.</summary>
    public static void Axpby(float a, float* x, float b, float* y, float* output, int count)
    {
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var va = new Vector<float>(a);
            var vb = new Vector<float>(b);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
                Vector.Store(va * Vector.Load(x + i) + vb * Vector.Load(y + i), output + i);
        }

        for (; i < count; i++)
            output[i] = a * x[i] + b * y[i];
    }

    /// <summary>row[i] -= baseline[i].</summary>
    public static void Subtract(Span<float> row, ReadOnlySpan<float> baseline) =>
        TensorPrimitives.Subtract(row, baseline, row);

    /// <summary>values[i] *= factor.</summary>
    public static void Scale(Span<float> values, float factor) =>
        TensorPrimitives.Multiply(values, factor, values);

    public static void Divide(Span<float> values, float divisor) =>
        TensorPrimitives.Divide(values, divisor, values);
}
