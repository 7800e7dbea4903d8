using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Divergence-aware weights (Weld): per tensor, each task vector's weight falls with its cosine similarity to the
/// mean task vector, so a fine-tune that moved somewhere the others did not keeps more of its change:
/// <code>
///   τ_k = θ_k − θ_base,   τ̄ = (1/K) Σ_k τ_k,   c_k = cos(τ_k, τ̄)   (0 when either norm is 0)
///   w_k = softmax_k(−c_k / T),   θ = θ_base + λ · Σ_k w_k τ_k
/// </code>
/// Global <c>temperature</c> (T, default 1; large T tends to the plain mean of the task vectors, i.e. the mean of
/// the models) and <c>lambda</c> (λ, default 1). Dot products and norms accumulate in float64 (the kernels'). Needs the whole tensor.
/// </summary>
public sealed class DivergenceWeights : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "divergence_weights";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("temperature", ParameterScope.Global, 1.0, min: 0, minExclusive: true),
        ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        kernels.SubtractRows(inputs.Models.Span, baseline);
        int n = inputs.Length, count = inputs.Count;
        ReadOnlySpan<float> tau = inputs.Models.Span;

        // τ̄ goes in the output buffer first; it is overwritten by the weighted sum once the weights are known.
        var uniform = new float[count];
        Array.Fill(uniform, 1f / count);
        kernels.WeightedSum(tau, uniform, output);
        double meanNorm = Math.Sqrt(kernels.SumOfSquares(output));
        var logits = new double[count];
        double temperature = inputs.Global.Number("temperature");
        for (int k = 0; k < count; k++)
        {
            ReadOnlySpan<float> row = tau.Slice(k * n, n);
            double norms = Math.Sqrt(kernels.SumOfSquares(row)) * meanNorm;
            double dot = kernels.Dot(row, output);
            double cosine = norms > 0 ? dot / norms : 0;
            logits[k] = -cosine / temperature;
        }
        float[] weights = Softmax(logits);
        kernels.WeightedSum(tau, weights, output);
        float lambda = (float)inputs.Global.Number("lambda");
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, baseline, 1f, output, output);
    }

    /// <summary>softmax over the logits, shifted by their maximum so exp never overflows.</summary>
    private static float[] Softmax(double[] logits)
    {
        double max = double.NegativeInfinity;
        foreach (double l in logits) max = Math.Max(max, l);
        double total = 0;
        var exp = new double[logits.Length];
        for (int k = 0; k < logits.Length; k++) total += exp[k] = Math.Exp(logits[k] - max);
        var weights = new float[logits.Length];
        for (int k = 0; k < logits.Length; k++) weights[k] = (float)(exp[k] / total);
        return weights;
    }
}
