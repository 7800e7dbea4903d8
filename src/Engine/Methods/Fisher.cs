namespace Weld.Engine.Methods;

/// <summary>
/// Fisher-weighted averaging (Matena &amp; Raffel 2022, "Merging Models with Fisher-Weighted Averaging"): per element,
/// each model's parameter weighted by its diagonal Fisher information F_k (or any curvature estimate such as
/// Adam's second moment <c>exp_avg_sq</c>):
/// <code>
///   θ_i = Σ_k w_k F_k,i θ_k,i / max(Σ_k w_k F_k,i, ε)
/// </code>
/// Per model <c>fisher</c> (a safetensors file or model folder with the same tensor names; required) and
/// <c>weight</c> (w_k, default 1); global <c>epsilon</c> (ε, default 1e-8) and <c>fisher_key_prefix</c> /
/// <c>fisher_key_suffix</c> (default empty), put around each tensor name to find its Fisher tensor. Sums run in
/// float32 in model order. Elementwise.
/// </summary>
public sealed class Fisher : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "fisher";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.None, 1, int.MaxValue, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.TensorFile("fisher"),
        ParameterSpec.Number("weight", ParameterScope.PerModel, 1.0, min: 0),
        ParameterSpec.Number("epsilon", ParameterScope.Global, 1e-8, min: 0, minExclusive: true),
        ParameterSpec.Text("fisher_key_prefix", ParameterScope.Global, ""),
        ParameterSpec.Text("fisher_key_suffix", ParameterScope.Global, ""),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        float[] weights = inputs.PerModel("weight");
        float epsilon = (float)inputs.Global.Number("epsilon");
        ReadOnlySpan<float> models = inputs.Models.Span;
        ReadOnlySpan<float> fisher = inputs.Auxiliary.Span;
        int n = inputs.Length, count = inputs.Count;
        if (fisher.Length != count * n)
            throw new WeldException($"tensor {inputs.TensorName}: fisher needs one Fisher tensor per model ({count}), got {fisher.Length / Math.Max(n, 1)}");
        inputs.Kernels.FisherMerge(models, fisher, weights, epsilon, output);
    }
}
