using ILGPU;
using ILGPU.Runtime;
using static Weld.Kernels.Gpu.GpuArithmetic;

namespace Weld.Kernels.Gpu;

public sealed partial class GpuKernels
{
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, int, int, ArrayView<float>>? _signConsensus;
    private Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int, long, int, int, float, ArrayView<float>, ArrayView<float>, int, ArrayView<float>>? _signConsensusOntoBase;

    /// <inheritdoc />
    public void SignConsensusMerge(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, Span<float> output)
    {
        if (election is not (SignElection.Sum or SignElection.Count))
            throw new ArgumentOutOfRangeException(nameof(election), election, "Unknown sign election.");
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stackedDeltas);
        ArrayView<float> weightView = call.Upload(weights);
        ArrayView<float> result = call.Rent<float>(length);
        LaunchSignConsensus(source, weightView, weights.Length, length, election, normalize, result);
        call.Download(result, output);
    }

    /// <inheritdoc />
    public void SignConsensusMergeOntoBase(ReadOnlySpan<float> stackedDeltas, ReadOnlySpan<float> weights,
        SignElection election, bool normalize, float lambda, ReadOnlySpan<float> baseline, Span<float> output,
        ReadOnlySpan<float> preScales = default)
    {
        if (election is not (SignElection.Sum or SignElection.Count))
            throw new ArgumentOutOfRangeException(nameof(election), election, "Unknown sign election.");
        int length = output.Length;
        RequireStacked(stackedDeltas.Length, weights.Length, length, nameof(stackedDeltas));
        if (baseline.Length != length)
            throw new ArgumentException($"Expected {length} elements, got {baseline.Length}.", nameof(baseline));
        RequirePreScales(preScales.Length, weights.Length);
        if (length == 0)
            return;
        using var call = new Call(this);
        ArrayView<float> source = call.Upload(stackedDeltas);
        ArrayView<float> weightView = call.Upload(weights);
        ArrayView<float> baseView = call.Upload(baseline);
        ArrayView<float> scaleView = call.Upload(preScales);
        ArrayView<float> result = call.Rent<float>(length);
        Load(ref _signConsensusOntoBase, SignConsensusKernel.MergeOntoBase)(Stream, GridFor(length), source, weightView, weights.Length, length,
            election == SignElection.Count ? 1 : 0, normalize ? 1 : 0, lambda, baseView, scaleView, preScales.IsEmpty ? 0 : 1, result);
        call.Download(result, output);
    }

    /// <summary>Queues the TIES merge of device arrays (<paramref name="rows"/> stacked rows of <paramref name="length"/>).</summary>
    internal void LaunchSignConsensus(ArrayView<float> stacked, ArrayView<float> weights, int rows, long length,
        SignElection election, bool normalize, ArrayView<float> output) =>
        Load(ref _signConsensus, SignConsensusKernel.Merge)(Stream, GridFor(length), stacked, weights, rows, length,
            election == SignElection.Count ? 1 : 0, normalize ? 1 : 0, output);
}

/// <summary>
/// TIES sign election and disjoint merge, per element with d_k = w_k·δ_k (float32, rounded), exactly the CPU's
/// <c>SignConsensusKernel</c>: Sum election s = ((+0 + d_0) + d_1) + …, elected = s ≥ 0 ? +1 : −1 (NaN elects −1);
/// Count election c = Σ sign(d_k) with sign(0) = sign(NaN) = 0; agree_k = sign(d_k) == elected; output = the k-ordered
/// float32 sum of the agreeing d_k, divided (normalize) by the k-ordered sum of the agreeing w_k, 0 replaced by 1.
/// </summary>
/// <remarks>
/// One pass over the K rows for any K, nothing cached per model: besides the election, each thread keeps the k-ordered
/// sums of the positive d_k and of the negative d_k (and of their weights). The agreeing models are exactly the
/// positive ones (elected +1) or the negative ones (elected −1), so the chosen pair is the very sequence of float32
/// additions the CPU makes — bit for bit — while each delta is read once.
/// </remarks>
internal static class SignConsensusKernel
{
    /// <summary>output[i] for every i of the grid-stride range; rows are <paramref name="length"/> apart.</summary>
    public static void Merge(ArrayView<float> stacked, ArrayView<float> weights, int rows, long length, int countElection,
        int normalize, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
            output[i] = MergeElement(stacked, weights, rows, length, countElection, normalize, default, 0, i);
    }

    /// <summary>
    /// As <see cref="Merge"/>, then m·λ when λ ≠ 1 and 1·base + 1·m: the GPU <c>Scale</c> and <c>Axpby</c> kernels'
    /// rounded steps, in their order. With <paramref name="preScaled"/> ≠ 0, δ_k = x·preScales[k] rounded (the GPU
    /// <c>Scale</c> kernel's bits) before d_k = w_k·δ_k.
    /// </summary>
    public static void MergeOntoBase(ArrayView<float> stacked, ArrayView<float> weights, int rows, long length, int countElection,
        int normalize, float lambda, ArrayView<float> baseline, ArrayView<float> preScales, int preScaled, ArrayView<float> output)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = (long)Grid.IdxX * Group.DimX + Group.IdxX; i < length; i += stride)
        {
            float merged = MergeElement(stacked, weights, rows, length, countElection, normalize, preScales, preScaled, i);
            if (lambda != 1f) merged = Mul(merged, lambda);
            output[i] = Add(Mul(1f, baseline[i]), Mul(1f, merged));
        }
    }

    private static float MergeElement(ArrayView<float> stacked, ArrayView<float> weights, int rows, long length, int countElection,
        int normalize, ArrayView<float> preScales, int preScaled, long i)
    {
        float sum = 0f;
        int votes = 0;
        float positive = 0f, negative = 0f;
        float positiveWeight = 0f, negativeWeight = 0f;
        for (int k = 0; k < rows; k++)
        {
            float w = weights[k];
            float x = stacked[k * length + i];
            float d = Mul(w, preScaled != 0 ? Mul(x, preScales[k]) : x);
            sum = Add(sum, d);
            if (d > 0f)
            {
                votes++;
                positive = Add(positive, d);
                positiveWeight = Add(positiveWeight, w);
            }
            else if (d < 0f)
            {
                votes--;
                negative = Add(negative, d);
                negativeWeight = Add(negativeWeight, w);
            }
        }

        bool electedPositive = countElection != 0 ? votes >= 0 : sum >= 0f;
        float merged = electedPositive ? positive : negative;
        if (normalize != 0)
        {
            float divisor = electedPositive ? positiveWeight : negativeWeight;
            merged = Div(merged, divisor == 0f ? 1f : divisor);
        }

        return merged;
    }
}
