namespace Weld.Engine.Methods;

/// <summary>
/// Multi-SLERP (mergekit, Goddard 2025): barycentric interpolation of any number of tensors on the hypersphere,
/// through the tangent space at their weighted mean direction, with optional task vectors against a base:
/// <code>
///   v_k = x_k (− θ_base),  w_k ← w_k / Σ w (normalize_weights),  u_k = v_k / (‖v_k‖ + ε)
///   M = Σ w_k u_k,  m = M / ‖M‖,  τ = Σ w_k (u_k − ⟨u_k, m⟩ m),  ν = ‖τ‖ + ε
///   θ = (m cos ν + τ sin ν / ν) · Σ w_k ‖v_k‖  (+ θ_base)
/// </code>
/// A single input is returned as it is. When ‖M‖ &lt; ε two inputs fall back to Σ w_k v_k; more inputs are an error.
/// </summary>
/// <remarks>
/// Σ w_k ⟨u_k, m⟩ = ⟨M, m⟩ = ‖M‖, so the tangent τ = (1 − Σ w_k⟨u_k, m⟩ / ‖M‖) · M is parallel to M: the whole result
/// is one scaled copy of M, which is how it is computed here (float64 scalars, one pass per input).
/// </remarks>
public sealed class MultiSlerp : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "multislerp";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Optional, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("weight", ParameterScope.PerModel, null),
        ParameterSpec.Flag("normalize_weights", true),
        ParameterSpec.Number("eps", ParameterScope.Global, 1e-8, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        var kernels = inputs.Kernels;
        int count = inputs.Count;
        if (count == 1)
        {
            inputs.Row(0).CopyTo(output);
            return;
        }
        if (inputs.HasBase) kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);

        float[] weights = inputs.PerModel("weight");
        if (inputs.Global.Flag("normalize_weights"))
        {
            float total = 0;
            foreach (float w in weights) total += w;
            if (total == 0)
                throw new WeldException($"{inputs.TensorName}: multislerp's weights sum to 0, so normalize_weights would divide by 0");
            for (int k = 0; k < count; k++) weights[k] /= total;
        }
        double eps = inputs.Global.Number("eps");

        var norms = new double[count];
        var unitScale = new float[count]; // w_k / (‖v_k‖ + ε): M = Σ unitScale_k v_k
        double averageNorm = 0;
        for (int k = 0; k < count; k++)
        {
            norms[k] = Math.Sqrt(kernels.SumOfSquares(inputs.Row(k)));
            unitScale[k] = (float)(weights[k] / (norms[k] + eps));
            averageNorm += norms[k] * weights[k];
        }

        kernels.WeightedSum(inputs.Models.Span, unitScale, output);
        double meanNorm = Math.Sqrt(kernels.SumOfSquares(output));
        if (meanNorm < eps)
        {
            if (count != 2)
                throw new WeldException($"{inputs.TensorName}: multislerp's weighted mean direction is zero (antipodal inputs whose weights cancel); use other weights");
            kernels.WeightedSum(inputs.Models.Span, weights, output);
        }
        else
        {
            double projection = 0; // Σ w_k ⟨u_k, m⟩
            for (int k = 0; k < count; k++) projection += unitScale[k] * kernels.Dot(inputs.Row(k), output) / meanNorm;
            double tangent = 1 - projection / meanNorm; // τ = tangent · M
            double nu = Math.Abs(tangent) * meanNorm + eps;
            double scale = averageNorm * (Math.Cos(nu) / meanNorm + tangent * Math.Sin(nu) / nu);
            kernels.Scale(output, (float)scale);
        }
        if (inputs.HasBase) kernels.Axpby(1f, inputs.Base.Span, 1f, output, output);
    }
}
