namespace Weld.Engine.Methods;

/// <summary>
/// Karcher mean (mergekit): the weighted Riemannian mean of the inputs' directions on the unit hypersphere, scaled by
/// their mean norm; every input (a base included) weighs 1/N:
/// <code>
///   u_k = x_k / ‖x_k‖ (inputs with ‖x_k‖ ≤ tol left out),  m = normalise(Σ a_k u_k)
///   repeat max_iter times:  T = Σ a_k (θ_k / sin θ_k)(u_k − cos θ_k m),  cos θ_k = ⟨m, u_k⟩  (θ_k &lt; tol skipped)
///                           stop when ‖T‖ &lt; tol;  m ← normalise(cos‖T‖ m + sin‖T‖ T/‖T‖)
///   θ = (Σ_k ‖x_k‖ / N) · m
/// </code>
/// </summary>
public sealed class Karcher : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "karcher";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.None, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("max_iter", ParameterScope.Global, 10, 0),
        ParameterSpec.Number("tol", ParameterScope.Global, 1e-5, 0),
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
        int maxIterations = (int)inputs.Global.Number("max_iter");
        double tol = inputs.Global.Number("tol");
        double alpha = 1.0 / count;

        var norms = new double[count];
        double validAlpha = 0, scale = 0;
        for (int k = 0; k < count; k++)
        {
            norms[k] = Math.Sqrt(kernels.SumOfSquares(inputs.Row(k)));
            if (norms[k] > tol) validAlpha += alpha;
            scale += alpha * norms[k];
        }
        if (validAlpha == 0)
        {
            output.Clear();
            return;
        }
        double share = alpha / validAlpha; // the normalised alpha of each valid input

        // Initial guess: the normalised weighted mean of the unit vectors (the first unit vector if that vanishes).
        var coefficients = new float[count];
        for (int k = 0; k < count; k++) coefficients[k] = norms[k] > tol ? (float)(share / norms[k]) : 0f;
        kernels.WeightedSum(inputs.Models.Span, coefficients, output);
        double meanNorm = Math.Sqrt(kernels.SumOfSquares(output));
        if (meanNorm < tol)
        {
            int first = Array.FindIndex(norms, x => x > tol);
            inputs.Row(first).CopyTo(output);
            kernels.Divide(output, (float)norms[first]);
        }
        else
        {
            kernels.Divide(output, (float)meanNorm);
        }

        float[] tangent = new float[inputs.Length];
        for (int iteration = 0; iteration < maxIterations; iteration++)
        {
            // T = Σ c_k x_k / ‖x_k‖ − (Σ c_k cos θ_k) m with c_k = a_k θ_k / sin θ_k.
            double along = 0;
            for (int k = 0; k < count; k++)
            {
                coefficients[k] = 0f;
                if (norms[k] <= tol) continue;
                double cos = Math.Clamp(kernels.Dot(output, inputs.Row(k)) / norms[k], -1, 1);
                double theta = Math.Acos(cos);
                if (theta < tol) continue;
                double c = share * theta / Math.Sin(theta);
                coefficients[k] = (float)(c / norms[k]);
                along += c * cos;
            }
            kernels.WeightedSum(inputs.Models.Span, coefficients, tangent);
            kernels.Axpby(1f, tangent, (float)-along, output, tangent);
            double tangentNorm = Math.Sqrt(kernels.SumOfSquares(tangent));
            if (tangentNorm < tol) break;
            kernels.Axpby((float)Math.Cos(tangentNorm), output, (float)(Math.Sin(tangentNorm) / tangentNorm), tangent, output);
            double unitNorm = Math.Sqrt(kernels.SumOfSquares(output));
            if (unitNorm > tol) kernels.Divide(output, (float)unitNorm);
        }
        kernels.Scale(output, (float)scale);
    }
}
