using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

/// <remarks>Arcee Fusion's importance scores (<see cref="SoftmaxDivergence"/>): upload, one launch, download.</remarks>
public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, long, long, ArrayView<float>>? _softmaxDivergenceScores;

    /// <inheritdoc />
    /// <remarks>
    /// On ILGPU's CPU accelerator the kernel calls .NET's <see cref="Math.Exp"/> and <see cref="Math.Log(double)"/>, so the
    /// scores equal the CPU backend's bit for bit. On CUDA ILGPU compiles them to its own float64 exp and log
    /// (libdevice's <c>__nv_exp</c> / <c>__nv_log</c>, or ILGPU.Algorithms' software versions), which are not the C
    /// library's: as the contract allows, a score may then differ from the CPU's in the last bits. Every other
    /// operation is rounded as on the CPU.
    /// </remarks>
    public void SoftmaxDivergenceScores(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, int rowLength, Span<float> scores)
    {
        int length = scores.Length;
        RequireMethodLength(length, model.Length, nameof(model));
        RequireMethodLength(length, baseline.Length, nameof(baseline));
        if (length == 0)
            return;
        if (rowLength < 1 || length % rowLength != 0)
            throw new ArgumentException($"{length} values do not split into rows of {rowLength}.", nameof(rowLength));
        long rows = length / rowLength;
        using var call = new Call(this);
        ArrayView<float> modelView = call.Upload(model);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> result = call.Rent<float>(length);
        Load(ref _softmaxDivergenceScores, SoftmaxDivergence.ScoreRows)(Stream, GridFor(rows), modelView, baseView, rowLength, rows, result);
        call.Download(result, scores);
    }
}

/// <summary>
/// Arcee Fusion's importance, one thread per row: the CPU's <c>Cpu/SoftmaxDivergence.cs</c> step by step, every sum in
/// row order. The CPU keeps the floored probabilities in scratch; here each is recomputed from the same inputs by the
/// same operations where it is needed, which gives the same float32 value.
/// </summary>
internal static class SoftmaxDivergence
{
    private const float ProbabilityFloor = 1e-8f;

    /// <summary>scores[j] = |model[j] − baseline[j]| · (float)KL(softmax(model) + 1e-8 ‖ softmax(baseline) + 1e-8), row by row.</summary>
    public static void ScoreRows(ArrayView<float> model, ArrayView<float> baseline, long rowLength, long rows, ArrayView<float> scores)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long row = (long)Grid.IdxX * Group.DimX + Group.IdxX; row < rows; row += stride)
        {
            long start = row * rowLength;
            float maxP = float.NegativeInfinity, maxQ = float.NegativeInfinity;
            for (long j = 0; j < rowLength; j++)
            {
                maxP = MaxKeepNaN(maxP, model[start + j]);
                maxQ = MaxKeepNaN(maxQ, baseline[start + j]);
            }
            double sumP = 0, sumQ = 0;
            for (long j = 0; j < rowLength; j++)
            {
                sumP = Add(sumP, Math.Exp(Float64.Sub(model[start + j], maxP)));
                sumQ = Add(sumQ, Math.Exp(Float64.Sub(baseline[start + j], maxQ)));
            }
            double divergence = 0;
            for (long j = 0; j < rowLength; j++)
            {
                float p = FlooredProbability(model[start + j], maxP, sumP);
                float q = FlooredProbability(baseline[start + j], maxQ, sumQ);
                divergence = Add(divergence, Mul(p, Math.Log(Float64.Div(p, q))));
            }
            float d = (float)divergence;
            for (long j = 0; j < rowLength; j++)
                scores[start + j] = Mul(Math.Abs(Sub(model[start + j], baseline[start + j])), d);
        }
    }

    /// <summary>softmax(x)[j] + 1e-8: the float64 quotient rounded to float32, then the float32 floor added.</summary>
    private static float FlooredProbability(float x, float max, double sum) =>
        Add((float)Float64.Div(Math.Exp(Float64.Sub(x, max)), sum), ProbabilityFloor);

    /// <summary>
    /// <see cref="MathF.Max(float, float)"/> as .NET defines it: a NaN on either side is returned (the first one when
    /// both are), and +0 is above −0.
    /// </summary>
    private static float MaxKeepNaN(float a, float b)
    {
        if (a != b)
        {
            if (!float.IsNaN(a))
                return b < a ? a : b;
            return a;
        }
        return (Bits(b) >> 31) != 0 ? a : b;
    }
}
