namespace Weld.Engine.Methods;

/// <summary>Copies the one input tensor unchanged (times an optional <c>scale</c>): layer stacking with slices.</summary>
public sealed class Passthrough : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "passthrough";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.None, 1, 1, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("scale", ParameterScope.PerModel, 1.0),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        inputs.Row(0).CopyTo(output);
        float scale = (float)inputs.ModelParameters[0].Number("scale");
        if (scale != 1f) inputs.Kernels.Scale(output, scale);
    }
}
