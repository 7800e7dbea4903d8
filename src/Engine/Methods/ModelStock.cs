namespace Weld.Engine.Methods;

/// <summary>
/// Model Stock (Jang et al. 2024): interpolate between the base and the average of N ≥ 2 fine-tunes with
/// a ratio from the mean pairwise angle of their task vectors:
/// <code>
///   cos θ = mean_{i&lt;j} ⟨δ_i, δ_j⟩ / max(‖δ_i‖‖δ_j‖, 1e-6),   t = N cos θ / (1 + (N − 1) cos θ)
///   θ_H = t · mean_k θ_k + (1 − t) · θ_base
/// </code>
/// With <c>filter_wise</c> the angle and ratio are taken per output row (dim −1) instead of per tensor.
/// </summary>
public sealed class ModelStock : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "model_stock";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 2, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Flag("filter_wise", false),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        int n = inputs.Count;
        int rowLength = inputs.Global.Flag("filter_wise") && inputs.Shape.Length >= 2
            ? (int)inputs.Shape[^1]
            : inputs.Length;
        var kernels = inputs.Kernels;
        ReadOnlySpan<float> baseline = inputs.Base.Span;

        // Average of the fine-tunes first (before the rows become task vectors).
        float[] uniform = new float[n];
        Array.Fill(uniform, 1f);
        kernels.WeightedSum(inputs.Models.Span, uniform, output);
        kernels.Divide(output, n);

        kernels.SubtractRows(inputs.Models.Span, baseline);
        // The ratios come from float64 reductions per row; the mix itself is one kernel call over all rows.
        int rows = rowLength == 0 ? 0 : inputs.Length / rowLength;
        float[] averageWeights = new float[rows], baseWeights = new float[rows];
        for (int row = 0; row < rows; row++)
        {
            double t = InterpolationRatio(inputs, row * rowLength, rowLength);
            averageWeights[row] = (float)t;
            baseWeights[row] = (float)(1 - t);
        }
        kernels.AxpbyRows(output.Slice(0, rows * rowLength), averageWeights, baseline.Slice(0, rows * rowLength), baseWeights);
    }

    private static double InterpolationRatio(TensorMergeInputs inputs, int start, int length)
    {
        int n = inputs.Count;
        double cosSum = 0;
        int pairs = 0;
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<float> di = inputs.Row(i).Slice(start, length);
            double normI = Math.Sqrt(inputs.Kernels.SumOfSquares(di));
            for (int j = i + 1; j < n; j++)
            {
                ReadOnlySpan<float> dj = inputs.Row(j).Slice(start, length);
                double normJ = Math.Sqrt(inputs.Kernels.SumOfSquares(dj));
                double cos = inputs.Kernels.Dot(di, dj) / Math.Max(normI * normJ, 1e-6);
                cosSum += Math.Clamp(cos, -1, 1);
                pairs++;
            }
        }
        double cosTheta = cosSum / pairs;
        return n * cosTheta / (1 + (n - 1) * cosTheta);
    }
}
