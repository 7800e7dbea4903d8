using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// MagMax (Marczak et al. 2024): per element, the task-vector entry of largest magnitude across the models:
/// <code>
///   k*(i) = argmax_k |θ_k,i − θ_base,i|,   θ_i = θ_base,i + λ · (θ_k*(i),i − θ_base,i)
/// </code>
/// Equal magnitudes go to the first model in recipe order; NaN counts as the largest magnitude (Weld's magnitude key).
/// </summary>
public sealed class MagMax : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "magmax";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        kernels.SubtractRows(inputs.Models.Span, baseline);
        kernels.SelectLargestMagnitude(inputs.Models.Span, output); // τ_k*(i),i
        float lambda = (float)inputs.Global.Number("lambda");
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, baseline, 1f, output, output);
    }
}
