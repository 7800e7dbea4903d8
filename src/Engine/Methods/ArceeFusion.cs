using Weld.Kernels;
using Weld.Kernels.Random;

namespace Weld.Engine.Methods;

/// <summary>
/// Arcee Fusion (mergekit): keep only the changes of the one other model that matter most, judged by the size of the
/// change times how much the row's softmax distribution moves:
/// <code>
///   P = softmax(θ_1) + 1e-8,  Q = softmax(θ_base) + 1e-8      (per row of the last dimension)
///   s_ij = |θ_1,ij − θ_base,ij| · Σ_j P_ij log(P_ij / Q_ij)
///   τ = median(s) + 1.5 · (q_0.75(s) − q_0.25(s)),  q_a = sorted(s)[⌊a · (m − 1)⌋]
///   θ = θ_base + (θ_1 − θ_base) · [s ≥ τ]
/// </code>
/// Tensors of more than 10⁶ elements take the quantiles from 10⁶ elements drawn with replacement from the model's
/// Philox stream (mergekit draws with torch's generator, so those thresholds cannot match it bit for bit).
/// A tensor too large for memory is streamed: the sampled positions are known before any data is read, so one pass
/// gathers the sampled scores (rows cut by a chunk boundary are assembled and scored whole), a second applies the gate.
/// </summary>
public sealed partial class ArceeFusion : IStreamingMergeMethod
{
    private const int SampleSize = 1_000_000;

    /// <inheritdoc />
    public string Name => "arcee_fusion";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, 1, UsesRandomness: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } = [];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        Span<float> model = inputs.Row(0);
        int n = inputs.Length;
        int rowLength = inputs.Shape.Length >= 1 && inputs.Shape[^1] > 0 ? (int)inputs.Shape[^1] : n;

        inputs.Kernels.SoftmaxDivergenceScores(model, baseline, rowLength, output.Slice(0, n));
        float threshold = Threshold(output, inputs.RandomKey(0));

        inputs.Kernels.KeepImportantChanges(baseline, model, threshold, output.Slice(0, n));
    }

    /// <summary>median + 1.5 · IQR of the scores (of a Philox sample of them above 10⁶ elements).</summary>
    internal static float Threshold(ReadOnlySpan<float> scores, PhiloxKey key)
    {
        long[] positions = SamplePositions(scores.Length, key);
        var sample = new float[positions.Length];
        for (int j = 0; j < sample.Length; j++) sample[j] = scores[(int)positions[j]];
        return Threshold(sample);
    }

    /// <summary>
    /// The positions whose scores the quantiles are taken from, in draw order: every position up to 10⁶ elements,
    /// else 10⁶ drawn with replacement, position j from the j-th 32 bits of the Philox stream scaled to the length.
    /// </summary>
    private static long[] SamplePositions(long length, PhiloxKey key)
    {
        var positions = new long[Math.Min(length, SampleSize)];
        for (int j = 0; j < positions.Length; j++)
            positions[j] = length > SampleSize ? (long)((Philox4x32.ElementBits(key, j) * (ulong)length) >> 32) : j;
        return positions;
    }

    /// <summary>
    /// median + 1.5 · IQR of the sampled scores (reordered in place), q_a = sorted[⌊a · (m − 1)⌋]. The three order
    /// statistics are selected, not sorted for (sorting the 10⁶-element sample was a fifth of the method's time); each
    /// selection goes on with the part above the previous one. A zero quantile may differ from the sorted one in its sign
    /// only, which neither the sums below nor the gate's ≥ can tell apart.
    /// </summary>
    private static float Threshold(float[] sample)
    {
        float last = sample.Length - 1;
        int i1 = (int)(0.25f * last), i2 = (int)(0.5f * last), i3 = (int)(0.75f * last);
        float q1 = OrderStatistic.Select(sample, i1);
        float median = i2 == i1 ? q1 : OrderStatistic.Select(sample.AsSpan(i1 + 1), i2 - i1 - 1);
        float q3 = i3 == i2 ? median : OrderStatistic.Select(sample.AsSpan(i2 + 1), i3 - i2 - 1);
        return median + 1.5f * (q3 - q1);
    }
}
