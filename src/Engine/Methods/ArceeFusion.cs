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
        int n = inputs.Length;
        if (n == 0)
            return;
        int rowLength = inputs.Shape.Length >= 1 && inputs.Shape[^1] > 0 ? (int)inputs.Shape[^1] : n;
        if (n % rowLength != 0)
            throw new ArgumentException($"{n} values do not split into rows of {rowLength}.", nameof(inputs));

        // The scores are |Δ| · D_row: the kernel gives each row's D, the sample and the gate form the scores from it.
        var divergences = new float[n / rowLength];
        inputs.Kernels.SoftmaxDivergences(inputs.Row(0), inputs.Base.Span, divergences);
        var sample = new float[Math.Min(n, SampleSize)];
        var parallel = Parallelism(inputs.Kernels);
        Memory<float> model = inputs.Models.Slice(0, n);
        ReadOnlyMemory<float> baseline = inputs.Base;
        PhiloxKey key = inputs.RandomKey(0);
        // Blocks of draws in parallel: each draw's position depends on its index alone. The positions are drawn first
        // and the scores gathered in a loop of loads alone, so that many of its cache misses are in flight at once.
        Parallel.For(0, (sample.Length + DrawBlock - 1) / DrawBlock, parallel, () => new long[2 * DrawBlock], (block, _, scratch) =>
        {
            ReadOnlySpan<float> m = model.Span, b = baseline.Span;
            int first = block * DrawBlock, count = Math.Min(sample.Length - first, DrawBlock);
            Span<long> positions = scratch.AsSpan(0, count), rows = scratch.AsSpan(DrawBlock, count);
            SamplePositions(n, key, first, positions);
            for (int k = 0; k < count; k++)
                rows[k] = positions[k] / rowLength;
            Span<float> scores = sample.AsSpan(first, count);
            for (int k = 0; k < count; k++)
                scores[k] = MathF.Abs(m[(int)positions[k]] - b[(int)positions[k]]);
            // |Δ| · D: the score as the kernels form it, in two steps of the same operations.
            for (int k = 0; k < count; k++)
                scores[k] *= divergences[(int)rows[k]];
            return scratch;
        }, static _ => { });
        float threshold = Threshold(sample, parallel);

        inputs.Kernels.KeepImportantChanges(inputs.Base.Span, inputs.Row(0), divergences, threshold, output.Slice(0, n));
    }

    /// <summary>Draws sampled per parallel block.</summary>
    private const int DrawBlock = 1 << 16;

    /// <summary>The score |model − baseline| · D, float32, as the kernels form it.</summary>
    private static float Score(float model, float baseline, float divergence) => MathF.Abs(model - baseline) * divergence;

    /// <summary>The kernels' thread count (every core for a GPU's host side).</summary>
    private static ParallelOptions Parallelism(IMergeKernels kernels) =>
        new() { MaxDegreeOfParallelism = kernels is Weld.Kernels.Cpu.CpuKernels cpu ? cpu.MaxDegreeOfParallelism : -1 };

    /// <summary>
    /// The positions whose scores draws first, first + 1, … take (<paramref name="first"/> a multiple of 4): each draw's
    /// own index up to 10⁶ elements, else drawn with replacement, draw j from the j-th 32 bits of the Philox stream
    /// scaled to the length (four draws from each Philox block).
    /// </summary>
    private static void SamplePositions(long length, PhiloxKey key, int first, Span<long> positions)
    {
        if (length <= SampleSize)
        {
            for (int k = 0; k < positions.Length; k++)
                positions[k] = first + k;
            return;
        }
        for (int k = 0; k < positions.Length; k += 4)
        {
            Philox4x32Block bits = Philox4x32.StreamBlock(key, (ulong)(first + k) >> 2);
            for (int lane = 0; lane < 4 && k + lane < positions.Length; lane++)
                positions[k + lane] = (long)((bits[lane] * (ulong)length) >> 32);
        }
    }

    /// <summary>
    /// median + 1.5 · IQR of the sampled scores (reordered in place), q_a = sorted[⌊a · (m − 1)⌋]. The three order
    /// statistics are selected, not sorted for (sorting the 10⁶-element sample was a fifth of the method's time): the
    /// median first, which leaves the sample split around it, then the quartiles, each in its own half, side by side.
    /// A zero quantile may differ from the sorted one in its sign only, which neither the sums below nor the gate's ≥
    /// can tell apart; every other value is the sorted one.
    /// </summary>
    private static float Threshold(float[] sample, ParallelOptions parallel)
    {
        float last = sample.Length - 1;
        int i1 = (int)(0.25f * last), i2 = (int)(0.5f * last), i3 = (int)(0.75f * last);
        float median = OrderStatistic.Select(sample, i2);
        float q1 = median, q3 = median;
        Parallel.Invoke(parallel,
            () => { if (i1 < i2) q1 = OrderStatistic.Select(sample.AsSpan(0, i2), i1); },
            () => { if (i3 > i2) q3 = OrderStatistic.Select(sample.AsSpan(i2 + 1), i3 - i2 - 1); });
        return median + 1.5f * (q3 - q1);
    }
}
