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

    /// <summary>
    /// The linear family's combine onto a base, per element in registers: v_k = x_k[i] (or x_k[i]·s_k rounded, through
    /// <paramref name="rowRead"/>), acc = ((+0 + w_0·v_0) + w_1·v_1) + …, then acc / divisor when divisor ≠ 1 (one IEEE
    /// division), acc·λ when λ ≠ 1, output[i] = base[i] + acc. The bits of Scale (per row), <see cref="WeightedSum"/>,
    /// Divide, Scale and Axpby(1, base, 1, acc) in turn: 1·x = x for every x but a signalling NaN, which the addition
    /// quiets just the same. Where base and acc are both NaN, which payload survives is the JIT's choice of operand
    /// order, as it is in Axpby (not part of the contract).
    /// </summary>
    public static void WeightedSumOntoBase<TRead>(TRead rowRead, float* stacked, long rowLength, ReadOnlySpan<float> weights,
        float divisor, float lambda, float* baseline, float* output, int count)
        where TRead : struct, IStackedRowRead
    {
        int rows = weights.Length;
        bool divide = divisor != 1f, scale = lambda != 1f;
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var divisorVector = new Vector<float>(divisor);
            var lambdaVector = new Vector<float>(lambda);
            for (; i <= count - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector<float> sum = Vector<float>.Zero;
                for (int k = 0; k < rows; k++)
                    sum += new Vector<float>(weights[k]) * rowRead.Load(stacked + k * rowLength + i, k);
                if (divide) sum /= divisorVector;
                if (scale) sum *= lambdaVector;
                Vector.Store(Vector.Load(baseline + i) + sum, output + i);
            }
        }

        for (; i < count; i++)
        {
            float sum = 0f;
            for (int k = 0; k < rows; k++)
                sum += weights[k] * rowRead.Read(stacked + k * rowLength + i, k);
            if (divide) sum /= divisor;
            if (scale) sum *= lambda;
            output[i] = baseline[i] + sum;
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
