namespace Weld.Engine.Methods;

/// <summary>
/// NearSwap (mergekit, after alchemonaut's QuartetAnemoi): take the other model's value where it is close to the
/// base's, keep the base where they differ much:
/// <code>
///   w_i = clamp(nan_to_num(t / |v0_i − v1_i|, nan = ±inf = 1), 0, 1),   θ_i = w_i v1_i + (1 − w_i) v0_i
/// </code>
/// v0 is the base, v1 the other model. As in torch, t / d is evaluated as (1 / d) · t in float32.
/// </summary>
public sealed class NearSwap : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "nearswap";

    /// <inheritdoc />
    public MethodTraits Traits => new(BaseModelUse.Required, 1, 1, Elementwise: true);

    /// <inheritdoc />
    public IReadOnlyList<ParameterSpec> Parameters { get; } =
    [
        ParameterSpec.Number("t", ParameterScope.Global, null, 0, minExclusive: true),
    ];

    /// <inheritdoc />
    public void Merge(TensorMergeInputs inputs, Span<float> output)
    {
        float t = (float)inputs.Global.Number("t");
        ReadOnlySpan<float> v0 = inputs.Base.Span;
        ReadOnlySpan<float> v1 = inputs.Row(0);
        inputs.Kernels.NearSwap(v0, v1, t, output);
    }
}
