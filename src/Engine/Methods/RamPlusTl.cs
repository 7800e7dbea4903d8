namespace Weld.Engine.Methods;

/// <summary>
/// RAM+ tensor-local (mergekit's <c>ramplus_tl</c>): RAM, with each model's unshared entries amplified by how much of
/// that model's task vector overlaps the others':
/// <code>
///   ρ_k = #{i : k touches i, c_i &gt; 1} / max(#{i : k touches i, c_i = 1}, ε),   λ_k = 1 + r · clamp(ρ_k, 0, α)
///   θ_i = θ_base,i + Σ_{k touches i} (c_i = 1 ? λ_k δ_k,i : δ_k,i / c_i)
/// </code>
/// "k touches i" means |δ_k,i| &gt; ε; c_i counts the models touching i.
/// </summary>
public sealed class RamPlusTl : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "ramplus_tl";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, int.MaxValue);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("r", ParameterScope.Global, 0.1),
        ParameterSpec.Number("alpha", ParameterScope.Global, 0.2),
        ParameterSpec.Number("epsilon", ParameterScope.Global, 1e-5, 0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.Kernels.SubtractRows(inputs.Models.Span, inputs.Base.Span);
        float epsilon = (float)inputs.Global.Number("epsilon");
        float r = (float)inputs.Global.Number("r"), alpha = (float)inputs.Global.Number("alpha");
        int count = inputs.Count;
        var sharedCounts = new long[count];
        var uniqueCounts = new long[count];
        inputs.Kernels.RamContributionCounts(inputs.Models.Span, epsilon, sharedCounts, uniqueCounts);

        var amplification = new float[count];
        for (int k = 0; k < count; k++)
        {
            // float32 as torch computes it: the integer counts are promoted, the clamp bound is ε.
            float rho = sharedCounts[k] / Math.Max((float)uniqueCounts[k], epsilon);
            amplification[k] = 1f + r * MathF.Min(MathF.Max(rho, 0f), alpha); // torch.clamp: max wins when min > max
        }
        inputs.Kernels.RamMerge(inputs.Models.Span, inputs.Base.Span, amplification, epsilon, output);
    }
}
