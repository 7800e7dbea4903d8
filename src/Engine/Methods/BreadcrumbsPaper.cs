using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Model Breadcrumbs at the paper's semantics (Davari &amp; Belilovsky 2024): per tensor, mask out the bottom β and the
/// top γ fraction of each task vector by magnitude, then task arithmetic:
/// <code>
///   m_k = [⌊β n⌋ &lt; rank(|δ_k|) ≤ n − ⌊γ n⌋],   θ = θ_base + λ Σ_k w_k (m_k ⊙ δ_k)
/// </code>
/// Unlike mergekit's <c>breadcrumbs</c> (which keeps a <c>density</c> below the top cut), both cuts are given directly;
/// β + γ ≥ 1 masks everything. Ranks break ties by position (Weld's magnitude band rule).
/// </summary>
public sealed class BreadcrumbsPaper : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "breadcrumbs_paper";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("beta", ParameterScope.PerModel, null, 0, 1),
        ParameterSpec.Number("gamma", ParameterScope.PerModel, 0.01, 0, 1),
        ParameterSpec.Number("weight", ParameterScope.PerModel, 1.0),
        ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        kernels.SubtractRows(inputs.Models.Span, baseline);
        long n = inputs.Length;
        for (int k = 0; k < inputs.Count; k++)
        {
            ResolvedParameters p = inputs.ModelParameters[k];
            kernels.KeepMagnitudeBand(inputs.Row(k), (long)(p.Number("beta") * n), (long)(p.Number("gamma") * n));
        }
        kernels.WeightedSum(inputs.Models.Span, inputs.PerModel("weight"), output);
        float lambda = (float)inputs.Global.Number("lambda");
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, baseline, 1f, output, output);
    }
}
