namespace Weld.Engine.Methods;

/// <summary>
/// RAM, Reinforced Agent Merging (mergekit, arXiv 2601.13572): an entry of a task vector counts when |δ_k,i| &gt; ε;
/// entries only one model touches are added as they are, entries several touch are averaged over those models:
/// <code>
///   c_i = #{k : |δ_k,i| &gt; ε},   θ_i = θ_base,i + Σ_{k : |δ_k,i| &gt; ε} (c_i = 1 ? δ_k,i : δ_k,i / c_i)
/// </code>
/// </summary>
public sealed class Ram : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "ram";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("epsilon", ParameterScope.Global, 1e-5, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        var uniqueScale = new float[inputs.Count];
        Array.Fill(uniqueScale, 1f);
        inputs.Kernels.RamMerge(inputs.Models.Span, inputs.Base.Span, uniqueScale, (float)inputs.Global.Number("epsilon"), output);
    }
}
