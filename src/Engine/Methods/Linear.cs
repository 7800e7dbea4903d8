namespace Weld.Engine.Methods;

/// <summary>Weighted average / model soup (Wortsman et al. 2022): θ = Σ_k w_k θ_k, divided by Σ_k w_k when normalize.</summary>
public sealed class Linear : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "linear";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.None, 1, int.MaxValue, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("weight", ParameterScope.PerModel, null),
        ParameterSpec.Flag("normalize", true),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        float[] weights = inputs.PerModel("weight");
        inputs.Kernels.WeightedSum(inputs.Models.Span, weights, output);
        if (!inputs.Global.Flag("normalize")) return;
        float total = 0;
        foreach (float w in weights) total += w;
        inputs.Kernels.Divide(output, total); // mergekit divides without a zero guard; validation refuses Σw = 0
    }
}
