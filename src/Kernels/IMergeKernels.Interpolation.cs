namespace Weld.Kernels;

/// <remarks>
/// Interpolation against the base model (LiNeS' layer scaling, Model Stock's final mix, Arcee Fusion's gate) and DELLA's per-fiber
/// magnitude-rank sampling: the last per-element loops that the methods ran on the host. Exact like the rest of the
/// interface: every product, sum and quotient rounded to float32 on its own (no FMA).
/// </remarks>
public partial interface IMergeKernels
{
    /// <summary>
    /// LiNeS: merged[i] = baseline[i] + scale · (merged[i] − baseline[i]), the difference, the product and the sum each
    /// rounded to float32 in that order. Applies the formula for every scale (s = 1 is not skipped here: the caller
    /// decides whether the round trip is wanted).
    /// </summary>
    void ScaleFromBase(ReadOnlySpan<float> baseline, Span<float> merged, float scale);

    /// <summary>
    /// A row-wise <see cref="Axpby"/>: with m = values.Length / rows (rows = valueWeights.Length = baseWeights.Length ≥ 1
    /// when there are values), values[r·m + j] = valueWeights[r] · values[r·m + j] + baseWeights[r] · baseline[r·m + j],
    /// the two products rounded before the sum (Model Stock's θ = t · θ_avg + (1 − t) · θ_base per row).
    /// </summary>
    void AxpbyRows(Span<float> values, ReadOnlySpan<float> valueWeights, ReadOnlySpan<float> baseline, ReadOnlySpan<float> baseWeights);

    /// <summary>
    /// Arcee Fusion's gate: scores[i] = baseline[i] + (model[i] − baseline[i]) · m with m = 1 when
    /// scores[i] ≥ <paramref name="threshold"/> and m = 0 otherwise (a NaN score or threshold gives 0); the difference,
    /// the product and the sum each rounded to float32, so a non-finite change times 0 is NaN, as in the method's formula.
    /// </summary>
    void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, float threshold, Span<float> scores);

    /// <summary>
    /// Arcee Fusion's importance, row by row (rows of <paramref name="rowLength"/> ≥ 1 elements; the length is a multiple
    /// of it): P = softmax(model row) + 1e-8 and Q = softmax(baseline row) + 1e-8, each softmax in float64 over
    /// x − max (max as <see cref="MathF.Max(float, float)"/>: a NaN anywhere makes it NaN), the sum of exponentials from 0
    /// in row order, each probability rounded to float32 before the float32 floor is added; D = (float)Σ_j P_j·log(P_j / Q_j)
    /// in float64 in row order; scores[j] = |model[j] − baseline[j]| · D in float32. The exponential and logarithm are
    /// float64 functions within an ulp or so; both backends of this library use fdlibm's (every operation rounded on its
    /// own), so their scores are the same bits, and within a few float32 ulps of those on the C library's exp and log.
    /// </summary>
    void SoftmaxDivergenceScores(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, int rowLength, Span<float> scores);

    /// <summary>
    /// The D of each row of <see cref="SoftmaxDivergenceScores"/>, one float32 per row (divergences.Length rows, the
    /// length split into rows of equal length): a row's scores are |model[j] − baseline[j]| · D, so the D alone carry
    /// everything the scores do, in a row length's fraction of the space.
    /// </summary>
    void SoftmaxDivergences(ReadOnlySpan<float> model, ReadOnlySpan<float> baseline, Span<float> divergences);

    /// <summary>
    /// <see cref="KeepImportantChanges(ReadOnlySpan{float}, ReadOnlySpan{float}, float, Span{float})"/> with each score
    /// formed on the way, |model[i] − baseline[i]| · divergences[r] for i in row r (merged.Length / divergences.Length
    /// elements a row): the same bits as gating the scores of <see cref="SoftmaxDivergenceScores"/>, without storing them.
    /// </summary>
    void KeepImportantChanges(ReadOnlySpan<float> baseline, ReadOnlySpan<float> model, ReadOnlySpan<float> divergences, float threshold,
        Span<float> merged);
}
