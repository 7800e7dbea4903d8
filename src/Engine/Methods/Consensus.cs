using Weld.Kernels;

namespace Weld.Engine.Methods;

/// <summary>
/// Consensus merging with TALL masks (Wang et al. 2024, "Localizing Task Information for Improved Model Merging
/// and Compression"): the task-arithmetic vector, kept only where at least k tasks' masks agree it matters to them:
/// <code>
///   τ_k = θ_k − θ_base,   τ_MTL = Σ_k τ_k,   m_k = [ |τ_k| ≥ λ_k · |τ_MTL − τ_k| ]   (TALL mask of task k)
///   θ = θ_base + λ · τ_MTL ⊙ [ Σ_k m_k ≥ k ]
/// </code>
/// Per model <c>mask_lambda</c> (λ_k, default 0.4, the middle of the paper's search grid {0.2, …, 0.6}); global
/// <c>lambda</c> (λ, default 1) and <c>k</c> (default 2, the paper's consensus threshold). Elementwise.
/// </summary>
public sealed class Consensus : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "consensus";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("mask_lambda", ParameterScope.PerModel, 0.4, min: 0),
        ParameterSpec.Number("lambda", ParameterScope.Global, 1.0),
        ParameterSpec.Number("k", ParameterScope.Global, 2, min: 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        IMergeKernels kernels = inputs.Kernels;
        ReadOnlySpan<float> baseline = inputs.Base.Span;
        kernels.SubtractRows(inputs.Models.Span, baseline);
        float[] maskLambda = inputs.PerModel("mask_lambda");
        // Σ_k m_k ≥ k for an integer count is Σ_k m_k ≥ ⌈k⌉; a k above any count keeps nothing.
        double k = Math.Ceiling(inputs.Global.Number("k"));
        int minAgreeing = k > inputs.Count ? inputs.Count + 1 : (int)k;
        kernels.ConsensusMerge(inputs.Models.Span, maskLambda, minAgreeing, output); // τ_MTL ⊙ [Σ_k m_k ≥ k]
        float lambda = (float)inputs.Global.Number("lambda");
        if (lambda != 1f) kernels.Scale(output, lambda);
        kernels.Axpby(1f, baseline, 1f, output, output);
    }
}
